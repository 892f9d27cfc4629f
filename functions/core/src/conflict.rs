//! Conflict policies for settings documents, pure: given what the server holds and what a
//! device wrote on top of which version, decide what happens. Each write carries the version
//! it was based on; a write based on anything but the current version is stale.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// A stale write still replaces what the server holds.
    ClientWins,
    /// A stale write is refused; the device takes the server's document.
    ServerWins,
    /// The later `modified_at` wins; a tie keeps the server's.
    MostRecentWins,
    /// A stale write is kept aside as a conflict for the user to settle.
    Manual,
}

impl Policy {
    /// What a namespace without a chosen policy gets: what people expect of settings.
    pub const DEFAULT: Policy = Policy::MostRecentWins;

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::ClientWins => "client_wins",
            Policy::ServerWins => "server_wins",
            Policy::MostRecentWins => "most_recent_wins",
            Policy::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<Policy> {
        Some(match s {
            "client_wins" => Policy::ClientWins,
            "server_wins" => Policy::ServerWins,
            "most_recent_wins" => Policy::MostRecentWins,
            "manual" => Policy::Manual,
            _ => return None,
        })
    }
}

/// The server's side of a document, as far as deciding needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Held {
    pub version: i64,
    pub modified_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not stale: the write applies.
    Apply,
    /// Stale, and the policy let the write through (`outcome` says why).
    Override { outcome: &'static str },
    /// Stale, and the server's document stays.
    Reject { outcome: &'static str },
    /// Stale under `manual`: kept as a conflict.
    Hold,
}

/// Decides one write. `held` is `None` when the document does not exist (version 0).
pub fn decide(policy: Policy, base_version: i64, modified_at: i64, held: Option<Held>) -> Decision {
    let current = held.map_or(0, |h| h.version);
    if base_version == current {
        return Decision::Apply;
    }
    match policy {
        Policy::ClientWins => Decision::Override {
            outcome: "client_won",
        },
        Policy::ServerWins => Decision::Reject {
            outcome: "server_won",
        },
        Policy::MostRecentWins => match held {
            Some(h) if modified_at <= h.modified_at => Decision::Reject {
                outcome: "server_newer",
            },
            _ => Decision::Override {
                outcome: "client_newer",
            },
        },
        Policy::Manual => Decision::Hold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELD: Held = Held {
        version: 6,
        modified_at: 1_000,
    };

    #[test]
    fn a_write_on_the_current_version_applies_under_every_policy() {
        for p in [
            Policy::ClientWins,
            Policy::ServerWins,
            Policy::MostRecentWins,
            Policy::Manual,
        ] {
            assert_eq!(decide(p, 6, 0, Some(HELD)), Decision::Apply);
            assert_eq!(decide(p, 0, 0, None), Decision::Apply);
        }
    }

    #[test]
    fn a_stale_write_follows_the_policy() {
        assert_eq!(
            decide(Policy::ClientWins, 5, 0, Some(HELD)),
            Decision::Override {
                outcome: "client_won"
            }
        );
        assert_eq!(
            decide(Policy::ServerWins, 5, 9_999, Some(HELD)),
            Decision::Reject {
                outcome: "server_won"
            }
        );
        assert_eq!(
            decide(Policy::MostRecentWins, 5, 1_001, Some(HELD)),
            Decision::Override {
                outcome: "client_newer"
            }
        );
        assert_eq!(
            decide(Policy::MostRecentWins, 5, 1_000, Some(HELD)),
            Decision::Reject {
                outcome: "server_newer"
            },
            "a tie keeps the server's"
        );
        assert_eq!(decide(Policy::Manual, 5, 0, Some(HELD)), Decision::Hold);
        // Based on a version of a document the server does not have.
        assert_eq!(
            decide(Policy::ServerWins, 3, 0, None),
            Decision::Reject {
                outcome: "server_won"
            }
        );
    }

    #[test]
    fn policies_round_trip_their_names() {
        for p in [
            Policy::ClientWins,
            Policy::ServerWins,
            Policy::MostRecentWins,
            Policy::Manual,
        ] {
            assert_eq!(Policy::parse(p.as_str()), Some(p));
        }
        assert_eq!(Policy::parse("preserve_escalation"), None);
    }
}
