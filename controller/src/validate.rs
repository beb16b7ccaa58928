//! `ferrolb-controller validate [--strict] FILE|DIR...`: checks manifests offline with the API
//! crate's rules, printing one line per problem. Exit status: 0 all valid, 1 something invalid
//! (with `--strict`, also a reference that points nowhere), 2 unreadable input.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ferrolb_api::config;
use ferrolb_api::error::{ConfigError, Kind, Problem};
use ferrolb_api::manifest::{self, Document, Object};

/// The outcome of a run, ordered by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Every object is valid.
    Valid = 0,
    /// At least one object is invalid.
    Invalid = 1,
    /// At least one input could not be read.
    Unreadable = 2,
}

/// Manifest files under `path`: the file itself, or the `.yaml`/`.yml`/`.json` files of a
/// directory tree in name order.
fn manifest_files(path: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    if !path.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        let is_manifest = entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if entry.is_dir() {
            manifest_files(&entry, out)?;
        } else if is_manifest {
            out.push(entry);
        }
    }
    Ok(())
}

/// How references that point nowhere are judged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// The input is the whole configuration: a BFDProfile, Secret, Community alias, pool or peer
    /// it names must be in it (an error otherwise, where by default it is a warning).
    pub strict: bool,
}

/// Validates the manifests at `paths`, writing findings to `out`.
pub fn run(paths: &[PathBuf], options: Options, out: &mut dyn Write) -> io::Result<Verdict> {
    let mut run = Run {
        out,
        verdict: Verdict::Valid,
        objects: Vec::new(),
        origin: BTreeMap::new(),
    };
    let mut files = Vec::new();
    for path in paths {
        if let Err(e) = manifest_files(path, &mut files) {
            run.report(
                format_args!("{}: cannot read: {e}", path.display()),
                Verdict::Unreadable,
            )?;
        }
    }
    for file in &files {
        run.read(file)?;
    }
    run.check_set(options)?;
    let checked = run.objects.iter().filter(|o| identity(o).is_some()).count();
    writeln!(
        run.out,
        "{} file(s), {checked} FerroLB object(s): {}",
        files.len(),
        match run.verdict {
            Verdict::Valid => "valid",
            Verdict::Invalid => "INVALID",
            Verdict::Unreadable => "UNREADABLE INPUT",
        }
    )?;
    Ok(run.verdict)
}

/// One run's findings so far.
struct Run<'a> {
    out: &'a mut dyn Write,
    verdict: Verdict,
    /// Every object read, for the checks of the whole set.
    objects: Vec<Object>,
    /// Where each FerroLB object was first defined, to catch one defined twice.
    origin: BTreeMap<(Kind, String, String), PathBuf>,
}

impl Run<'_> {
    /// Prints one finding; `verdict` is how bad it is (`Valid` for a note or warning).
    fn report(&mut self, line: impl std::fmt::Display, verdict: Verdict) -> io::Result<()> {
        writeln!(self.out, "{line}")?;
        self.verdict = self.verdict.max(verdict);
        Ok(())
    }

    fn read(&mut self, file: &Path) -> io::Result<()> {
        let documents = match read_bounded(file) {
            Err(e) => {
                let line = format!("{}: cannot read: {e}", file.display());
                return self.report(line, Verdict::Unreadable);
            }
            Ok(bytes) => match manifest::parse(&bytes) {
                Ok(documents) => documents,
                Err(e) => {
                    return self.report(format!("{}: {e}", file.display()), Verdict::Unreadable);
                }
            },
        };
        for document in documents {
            self.document(file, document)?;
        }
        Ok(())
    }

    fn document(&mut self, file: &Path, document: Document) -> io::Result<()> {
        let object = match document {
            Document::Object {
                object,
                unknown_fields,
            } => {
                for error in &unknown_fields {
                    self.report(error, Verdict::Invalid)?;
                }
                *object
            }
            Document::Deprecated { object, warning } => {
                self.report(
                    format!("warning: {}: {warning}", file.display()),
                    Verdict::Valid,
                )?;
                *object
            }
            Document::Invalid(error) => return self.report(error, Verdict::Invalid),
            Document::Skipped(what) => {
                let line = format!("skipped: {what} in {}: not a FerroLB kind", file.display());
                return self.report(line, Verdict::Valid);
            }
        };
        if let Some(key) = identity(&object)
            && let Some(first) = self.origin.insert(key.clone(), file.to_path_buf())
        {
            let (kind, _, name) = key;
            let problem =
                Problem::DefinedTwice(format!("{} and {}", first.display(), file.display()));
            let error = ConfigError::new(kind, &name, "metadata.name", problem);
            return self.report(error, Verdict::Invalid);
        }
        self.objects.push(object);
        Ok(())
    }

    /// The rules across objects; references that point nowhere are warnings unless `strict`.
    fn check_set(&mut self, options: Options) -> io::Result<()> {
        let mut input = manifest::collect(&self.objects);
        if options.strict {
            // The whole configuration: a Secret that is not here does not exist.
            input.secrets.get_or_insert_with(Vec::new);
        }
        let built = config::build(&input);
        let unresolved = config::unresolved_names(&input);
        for problem in built.problems.iter().chain(&unresolved) {
            if !problem.is_transient() {
                self.report(problem, Verdict::Invalid)?;
                continue;
            }
            let absent = config::absent_kind(&input, &problem.problem)
                .map(|kind| format!("no {kind} in the input at all"));
            if options.strict {
                let note = absent.map(|a| format!(" ({a})")).unwrap_or_default();
                self.report(format!("{problem}{note}"), Verdict::Invalid)?;
            } else {
                let note = absent.map(|a| format!("{a}; ")).unwrap_or_default();
                let line = format!("warning: {problem} ({note}it may be created later)");
                self.report(line, Verdict::Valid)?;
            }
        }
        Ok(())
    }
}

/// Reads a file, refusing one over the manifest limit without loading it.
fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    let limit = manifest::MAX_INPUT_BYTES as u64;
    let mut bytes = Vec::new();
    // One byte past the limit is enough for `manifest::parse` to report the size.
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// (kind, namespace, name) of a FerroLB object; `None` for Secrets and Nodes.
fn identity(object: &Object) -> Option<(Kind, String, String)> {
    let (kind, name) = object.identity()?;
    Some((kind, object.namespace().unwrap_or_default(), name))
}
