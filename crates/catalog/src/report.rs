//! Serialisable records of what happened to rows, shared by the CLI and the Lambda reports.

use serde::{Deserialize, Serialize};

use crate::batch::Superseded;
use crate::reader::RejectedRow;
use crate::rules::{Problem, ProblemKind};

/// One row that is not sent, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowIssue {
    /// 1-based line on which the record starts.
    pub line: u64,
    /// The product id, when readable.
    pub id: Option<String>,
    /// `rejected` or `superseded`.
    pub outcome: RowOutcome,
    /// Every reason.
    pub problems: Vec<ProblemReport>,
}

/// Why a row is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowOutcome {
    /// The row breaks the contract.
    Rejected,
    /// A later row with the same id replaces it.
    Superseded,
}

/// One problem, in a form a person and a program can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemReport {
    /// The column, when the problem concerns one.
    pub field: Option<String>,
    /// Stable machine-readable name, e.g. `too_long`.
    pub code: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl From<&Problem> for ProblemReport {
    fn from(problem: &Problem) -> Self {
        ProblemReport {
            field: problem.field.map(|field| field.name().to_owned()),
            code: problem.kind.code().to_owned(),
            message: problem.to_string(),
        }
    }
}

impl From<&RejectedRow> for RowIssue {
    fn from(row: &RejectedRow) -> Self {
        RowIssue {
            line: row.line,
            id: row.id.clone(),
            outcome: RowOutcome::Rejected,
            problems: row.problems.iter().map(ProblemReport::from).collect(),
        }
    }
}

impl From<&Superseded> for RowIssue {
    fn from(superseded: &Superseded) -> Self {
        let problem = Problem {
            field: Some(crate::Field::Id),
            kind: ProblemKind::Superseded {
                by_line: superseded.by.line,
            },
        };
        RowIssue {
            line: superseded.earlier.line,
            id: Some(superseded.id.clone()),
            outcome: RowOutcome::Superseded,
            problems: vec![ProblemReport::from(&problem)],
        }
    }
}
