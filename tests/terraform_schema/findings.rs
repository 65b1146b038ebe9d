//! What the checker reports: one line per finding, `path:line: error|warning: message`.

use std::fmt;

use crate::terraform_support::TfFile;

/// How bad a finding is: errors fail the test, warnings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
}

/// One problem, at a file and line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    pub level: Level,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{}:{}: {level}: {}", self.file, self.line, self.message)
    }
}

/// The findings of one check, in the order found.
#[derive(Debug, Default)]
pub struct Findings(Vec<Finding>);

impl Findings {
    /// An error at `line` of `file`.
    pub fn error(&mut self, file: &TfFile, line: usize, message: impl Into<String>) {
        self.push(&file.name, line, Level::Error, message.into());
    }

    /// A warning at `line` of `file`.
    pub fn warning(&mut self, file: &TfFile, line: usize, message: impl Into<String>) {
        self.push(&file.name, line, Level::Warning, message.into());
    }

    /// A finding in a file that could not be parsed (so there is no [`TfFile`]).
    pub fn push(&mut self, file: &str, line: usize, level: Level, message: String) {
        let finding = Finding {
            file: file.to_string(),
            line,
            level,
            message,
        };
        // The same reference written twice on one line is one finding.
        if !self.0.contains(&finding) {
            self.0.push(finding);
        }
    }

    /// The errors, sorted by file and line.
    pub fn errors(&self) -> Vec<&Finding> {
        self.sorted()
            .into_iter()
            .filter(|f| f.level == Level::Error)
            .collect()
    }

    /// The warnings, sorted by file and line.
    pub fn warnings(&self) -> Vec<&Finding> {
        self.sorted()
            .into_iter()
            .filter(|f| f.level == Level::Warning)
            .collect()
    }

    /// Every finding, sorted by file and line.
    pub fn sorted(&self) -> Vec<&Finding> {
        let mut all: Vec<&Finding> = self.0.iter().collect();
        all.sort();
        all
    }

    /// The report: one line per finding, then `N errors, M warnings`.
    pub fn report(&self) -> String {
        let mut out: String = self.sorted().iter().map(|f| format!("{f}\n")).collect();
        out.push_str(&format!(
            "{} errors, {} warnings",
            self.errors().len(),
            self.warnings().len()
        ));
        out
    }
}

/// ` (did you mean "x"?)` when one of `candidates` is a likely misspelling of `name` (at most one
/// edit in four characters), else nothing.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(name, c), c))
        .filter(|&(d, _)| d > 0 && d * 4 <= name.chars().count())
        .min()
        .map(|(_, c)| format!(" (did you mean \"{c}\"?)"))
        .unwrap_or_default()
}

#[test]
fn did_you_mean_suggests_only_close_names() {
    assert_eq!(strsim::levenshtein("kitten", "sitting"), 3);
    assert_eq!(
        did_you_mean("message_endpoint", ["messages_endpoint", "id"]),
        " (did you mean \"messages_endpoint\"?)"
    );
    assert_eq!(did_you_mean("sauce", ["source"]), "");
    assert_eq!(did_you_mean("id", ["id"]), "");
}
