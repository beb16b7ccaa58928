//! `ferrolb-controller validate FILE|DIR...`: checks manifests offline with the API crate's rules,
//! printing one line per problem. Exit status: 0 all valid, 1 something invalid, 2 unreadable input.

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

/// Validates the manifests at `paths`, writing findings to `out`.
pub fn run(paths: &[PathBuf], out: &mut dyn Write) -> io::Result<Verdict> {
    let mut verdict = Verdict::Valid;
    let mut files = Vec::new();
    for path in paths {
        if let Err(e) = manifest_files(path, &mut files) {
            writeln!(out, "{}: cannot read: {e}", path.display())?;
            verdict = verdict.max(Verdict::Unreadable);
        }
    }
    let mut objects: Vec<Object> = Vec::new();
    let mut origin: BTreeMap<(Kind, String, String), PathBuf> = BTreeMap::new();
    for file in &files {
        let bytes = match read_bounded(file) {
            Ok(bytes) => bytes,
            Err(e) => {
                writeln!(out, "{}: cannot read: {e}", file.display())?;
                verdict = verdict.max(Verdict::Unreadable);
                continue;
            }
        };
        let documents = match manifest::parse(&bytes) {
            Ok(documents) => documents,
            Err(e) => {
                writeln!(out, "{}: {e}", file.display())?;
                verdict = verdict.max(Verdict::Unreadable);
                continue;
            }
        };
        for document in documents {
            let object = match document {
                Document::Object {
                    object,
                    unknown_fields,
                } => {
                    for error in &unknown_fields {
                        writeln!(out, "{error}")?;
                        verdict = verdict.max(Verdict::Invalid);
                    }
                    *object
                }
                Document::Deprecated { object, warning } => {
                    writeln!(out, "warning: {}: {warning}", file.display())?;
                    *object
                }
                Document::Invalid(error) => {
                    writeln!(out, "{error}")?;
                    verdict = verdict.max(Verdict::Invalid);
                    continue;
                }
                Document::Skipped(what) => {
                    writeln!(
                        out,
                        "skipped: {what} in {}: not a FerroLB kind",
                        file.display()
                    )?;
                    continue;
                }
            };
            if let Some(key) = identity(&object)
                && let Some(first) = origin.insert(key.clone(), file.clone())
            {
                let (kind, _, name) = key;
                let problem =
                    Problem::DefinedTwice(format!("{} and {}", first.display(), file.display()));
                writeln!(
                    out,
                    "{}",
                    ConfigError::new(kind, &name, "metadata.name", problem)
                )?;
                verdict = verdict.max(Verdict::Invalid);
                continue;
            }
            objects.push(object);
        }
    }
    let built = config::build(&manifest::collect(&objects));
    for problem in &built.problems {
        if problem.is_transient() {
            writeln!(out, "warning: {problem} (it may be created later)")?;
        } else {
            writeln!(out, "{problem}")?;
            verdict = verdict.max(Verdict::Invalid);
        }
    }
    let checked = objects.iter().filter(|o| identity(o).is_some()).count();
    writeln!(
        out,
        "{} file(s), {checked} FerroLB object(s): {}",
        files.len(),
        match verdict {
            Verdict::Valid => "valid",
            Verdict::Invalid => "INVALID",
            Verdict::Unreadable => "UNREADABLE INPUT",
        }
    )?;
    Ok(verdict)
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
