//! The prompt-template library: the built-in template plus every `NAME-VERSION.jinja` file of
//! the configured prompts directory (e.g. `prompts/planner-1.1.0.jinja`). The version is a
//! semantic version taken from the file name; each template is identified by `name@version`
//! and the sha256 of its text. Whether a released version's text changed is decided against
//! the registrations in the store (see `runtime::registry`), not here: this module only loads
//! and indexes files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::prompt::PromptTemplate;

/// Why the prompts directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("could not read the prompts directory {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "prompt file {} is not named NAME-VERSION.jinja with a semantic version (e.g. planner-1.2.0.jinja): {why}",
        path.display()
    )]
    BadName { path: PathBuf, why: String },
    #[error(
        "prompt template {name}@{version} is defined twice ({first} and {second}); keep one file per version"
    )]
    Duplicate {
        name: String,
        version: String,
        first: String,
        second: String,
    },
    #[error(
        "prompt template {reference} was not found; known templates: {known}. Reference one as NAME@VERSION"
    )]
    Unknown { reference: String, known: String },
    #[error(
        "prompt reference '{reference}' is not NAME@VERSION with a semantic version (e.g. planner@1.0.0)"
    )]
    BadReference { reference: String },
}

/// Splits `planner-1.2.0` into (`planner`, `1.2.0`): the version starts after the last `-`
/// that is followed by a digit and parses as a semantic version.
fn split_stem(stem: &str) -> Result<(String, semver::Version), String> {
    let candidates = stem
        .char_indices()
        .filter(|(_, c)| *c == '-')
        .map(|(i, _)| i)
        .collect::<Vec<_>>();
    for &i in &candidates {
        let (name, rest) = (&stem[..i], &stem[i + 1..]);
        if name.is_empty() || !rest.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(version) = semver::Version::parse(rest) {
            if !version.build.is_empty() {
                return Err(format!(
                    "'{rest}' carries build metadata, which semantic versioning ignores when comparing; use a pre-release or a new version"
                ));
            }
            return Ok((name.to_owned(), version));
        }
    }
    Err(format!("'{stem}' has no '-MAJOR.MINOR.PATCH' suffix"))
}

/// Parses `name@1.2.3`.
pub fn parse_reference(reference: &str) -> Result<(String, semver::Version), LibraryError> {
    let bad = || LibraryError::BadReference {
        reference: reference.to_owned(),
    };
    let (name, version) = reference.rsplit_once('@').ok_or_else(bad)?;
    if name.trim().is_empty() {
        return Err(bad());
    }
    let version = semver::Version::parse(version.trim()).map_err(|_| bad())?;
    Ok((name.trim().to_owned(), version))
}

/// One template and where it came from.
#[derive(Debug, Clone)]
pub struct LibraryEntry {
    pub template: PromptTemplate,
    /// The file, or `builtin`.
    pub source: String,
}

/// Every known template, by name then version (ascending).
#[derive(Debug, Clone, Default)]
pub struct PromptLibrary {
    entries: BTreeMap<String, BTreeMap<semver::Version, LibraryEntry>>,
}

impl PromptLibrary {
    /// The built-in template only.
    pub fn builtin() -> Self {
        let mut lib = Self::default();
        let t = PromptTemplate::builtin();
        let version = semver::Version::parse(&t.version).unwrap_or(semver::Version::new(1, 0, 0));
        lib.entries.entry(t.name.clone()).or_default().insert(
            version,
            LibraryEntry {
                template: t,
                source: "builtin".into(),
            },
        );
        lib
    }

    /// The built-in template plus every `*.jinja` file in `dir` (other files are ignored).
    /// A file with the built-in's name and version must have the built-in's text; anything
    /// else is refused by the registration check, like any changed version.
    pub fn load(dir: &Path) -> Result<Self, LibraryError> {
        let mut lib = Self::builtin();
        let read_err = |source| LibraryError::Read {
            path: dir.to_owned(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "jinja"))
            .collect();
        files.sort();
        for path in files {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            let (name, version) = split_stem(&stem).map_err(|why| LibraryError::BadName {
                path: path.clone(),
                why,
            })?;
            let text = std::fs::read_to_string(&path).map_err(|source| LibraryError::Read {
                path: path.clone(),
                source,
            })?;
            let template = PromptTemplate::new(&name, &version.to_string(), &text);
            let source = path.display().to_string();
            let slot = lib.entries.entry(name.clone()).or_default();
            match slot.get(&version) {
                Some(existing) if existing.source != "builtin" => {
                    return Err(LibraryError::Duplicate {
                        name,
                        version: version.to_string(),
                        first: existing.source.clone(),
                        second: source,
                    });
                }
                // A file may restate the built-in version; if its text differs, the
                // registration check refuses it (a released version never changes).
                Some(existing) if existing.template.hash == template.hash => {}
                _ => {
                    slot.insert(version, LibraryEntry { template, source });
                }
            }
        }
        Ok(lib)
    }

    /// Every entry, by name then version.
    pub fn entries(&self) -> impl Iterator<Item = &LibraryEntry> {
        self.entries.values().flat_map(|v| v.values())
    }

    /// The template `name@version`.
    pub fn get(&self, reference: &str) -> Result<&LibraryEntry, LibraryError> {
        let (name, version) = parse_reference(reference)?;
        self.entries
            .get(&name)
            .and_then(|v| v.get(&version))
            .ok_or_else(|| LibraryError::Unknown {
                reference: reference.to_owned(),
                known: self.known(),
            })
    }

    /// `name@version, ...` of every template.
    pub fn known(&self) -> String {
        self.entries()
            .map(|e| format!("{}@{}", e.template.name, e.template.version))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_split_into_name_and_semver() {
        let (n, v) = split_stem("planner-1.2.0").unwrap();
        assert_eq!((n.as_str(), v.to_string().as_str()), ("planner", "1.2.0"));
        let (n, v) = split_stem("my-planner-2.0.0-rc.1").unwrap();
        assert_eq!(
            (n.as_str(), v.to_string().as_str()),
            ("my-planner", "2.0.0-rc.1")
        );
        assert!(split_stem("planner").is_err());
        assert!(split_stem("planner-1.2").is_err());
        assert!(split_stem("-1.0.0").is_err());
    }

    #[test]
    fn references_need_a_semantic_version() {
        assert!(parse_reference("planner@1.0.0").is_ok());
        assert!(parse_reference("planner").is_err());
        assert!(parse_reference("planner@latest").is_err());
        assert!(parse_reference("@1.0.0").is_err());
    }

    #[test]
    fn loads_files_beside_the_builtin_and_refuses_duplicates_and_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("planner-1.1.0.jinja"), "Tools: {{ tools }}").unwrap();
        std::fs::write(dir.path().join("README.md"), "ignored").unwrap();
        let lib = PromptLibrary::load(dir.path()).unwrap();
        assert_eq!(lib.known(), "planner@1.0.0, planner@1.1.0");
        let e = lib.get("planner@1.1.0").unwrap();
        assert!(e.source.ends_with("planner-1.1.0.jinja"));
        assert_eq!(
            e.template.hash,
            super::super::prompt::content_hash("Tools: {{ tools }}")
        );
        let err = lib.get("planner@9.0.0").unwrap_err().to_string();
        assert!(err.contains("planner@1.0.0, planner@1.1.0"), "{err}");

        std::fs::write(dir.path().join("planner-01.1.0.jinja"), "x").unwrap();
        // "01.1.0" is not a valid semantic version (leading zero).
        let err = PromptLibrary::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("planner-01.1.0.jinja"), "{err}");
        std::fs::remove_file(dir.path().join("planner-01.1.0.jinja")).unwrap();
        std::fs::write(dir.path().join("planner-1.1.0+build.jinja"), "y").unwrap();
        let err = PromptLibrary::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("build metadata"), "{err}");
    }

    #[test]
    fn a_file_restating_the_builtin_keeps_its_own_text() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("planner-1.0.0.jinja"), "edited").unwrap();
        let lib = PromptLibrary::load(dir.path()).unwrap();
        let e = lib.get("planner@1.0.0").unwrap();
        assert_eq!(e.template.text, "edited");
    }
}
