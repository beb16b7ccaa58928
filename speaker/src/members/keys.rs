//! Where the gossip keys come from: one key file (`--members-key-file`), or a directory
//! (`--members-key-dir`, the memberlist Secret mounted as a volume) whose `secretkey` file is
//! the primary key (MetalLB's key name) and whose every other regular file is an accepted key
//! (see [`Keys`] for the rotation procedure). Hidden entries are skipped: a mounted Secret keeps
//! its real files under `..data`, behind visible symlinks.
//!
//! Reading is the edge; [`keys_from_dir`] decides from the files' contents.

use std::path::{Path, PathBuf};

use super::auth::{Key, Keys};

/// The primary key's file name in a key directory.
pub const PRIMARY_FILE: &str = "secretkey";

/// Why the keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file or the directory could not be read.
    #[error("reading the gossip key {path}: {source}")]
    Read {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file holds nothing but whitespace.
    #[error("the gossip key {0} is empty")]
    Empty(PathBuf),
    /// The directory has no primary key.
    #[error("the gossip key directory {0} has no `secretkey` file (the primary key)")]
    NoPrimary(PathBuf),
}

impl KeyError {
    /// Stable reason for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            KeyError::Read { .. } => "KeyUnreadable",
            KeyError::Empty(_) => "KeyEmpty",
            KeyError::NoPrimary(_) => "NoPrimaryKey",
        }
    }
}

/// The key in `path` (surrounding whitespace, such as a final newline, is not part of it).
pub fn read_key_file(path: &Path) -> Result<Key, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    key_from(path, &bytes)
}

/// The keys in directory `dir`.
pub fn read_key_dir(dir: &Path) -> Result<Keys, KeyError> {
    let unreadable = |source| KeyError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        // Follows symlinks: a mounted Secret's visible names are links to regular files.
        let is_file = std::fs::metadata(&path).is_ok_and(|m| m.is_file());
        if name.starts_with('.') || !is_file {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|source| KeyError::Read { path, source })?;
        files.push((name, bytes));
    }
    keys_from_dir(dir, files)
}

/// The keys of a directory `dir` holding `files` (name, contents): `secretkey` seals, every
/// file opens.
pub fn keys_from_dir(dir: &Path, mut files: Vec<(String, Vec<u8>)>) -> Result<Keys, KeyError> {
    files.sort();
    let mut primary = None;
    let mut accepted = Vec::new();
    for (name, bytes) in files {
        let key = key_from(&dir.join(&name), &bytes)?;
        if name == PRIMARY_FILE {
            primary = Some(key);
        } else {
            accepted.push(key);
        }
    }
    let primary = primary.ok_or_else(|| KeyError::NoPrimary(dir.to_owned()))?;
    Ok(Keys::new(primary, accepted))
}

fn key_from(path: &Path, bytes: &[u8]) -> Result<Key, KeyError> {
    let key = bytes.trim_ascii();
    if key.is_empty() {
        return Err(KeyError::Empty(path.to_owned()));
    }
    Ok(Key::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, contents: &str) -> (String, Vec<u8>) {
        (name.to_owned(), contents.as_bytes().to_vec())
    }

    #[test]
    fn secretkey_seals_and_every_file_opens() {
        let dir = Path::new("/keys");
        let keys =
            keys_from_dir(dir, vec![file("next", "B\n"), file("secretkey", "A\n")]).expect("keys");
        assert_eq!(keys, Keys::new(Key::new(*b"A"), vec![Key::new(*b"B")]));
    }

    #[test]
    fn a_directory_without_secretkey_or_with_an_empty_file_is_refused() {
        let dir = Path::new("/keys");
        let missing = keys_from_dir(dir, vec![file("old", "A")]).expect_err("no primary");
        assert_eq!(missing.reason(), "NoPrimaryKey");
        assert!(missing.to_string().contains("/keys"), "{missing}");
        let empty = keys_from_dir(dir, vec![file("secretkey", "A"), file("old", " \n")])
            .expect_err("empty");
        assert!(empty.to_string().contains("/keys/old"), "{empty}");
    }

    #[test]
    fn a_mounted_secret_is_read_through_its_links_and_hidden_entries_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The kubelet's layout: ..data → ..2024_01_01 holding the files; visible symlinks.
        let real = dir.path().join("..2024_01_01");
        std::fs::create_dir(&real).expect("dir");
        std::fs::write(real.join("secretkey"), "primary\n").expect("write");
        std::fs::write(real.join("previous"), "old").expect("write");
        std::os::unix::fs::symlink("..2024_01_01", dir.path().join("..data")).expect("link");
        for name in ["secretkey", "previous"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.path().join(name))
                .expect("link");
        }
        let keys = read_key_dir(dir.path()).expect("keys");
        assert_eq!(
            keys,
            Keys::new(Key::new(*b"primary"), vec![Key::new(*b"old")])
        );
        let file = read_key_file(&dir.path().join("secretkey")).expect("key file");
        assert_eq!(file, Key::new(*b"primary"));
    }
}
