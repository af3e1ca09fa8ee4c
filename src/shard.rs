//! Sharding accounts across replicas: `--shard i/n` keeps the accounts whose stable hash of
//! the account name falls in shard `i` of `n`, as fastly-exporter's `-service-shard` does for
//! services. The hash is fixed here and documented (docs/scaling.md), so an account stays in
//! its shard across restarts, versions and machines.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The most shards a process may be told there are; more would leave most shards empty.
pub const MAX_SHARDS: u32 = 1024;

/// One shard of `count`: `index` is 1-based, as in fastly-exporter (`1/3`, `2/3`, `3/3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// Why a shard spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not of the form `i/n`.
    #[error("is not of the form i/n (for example 2/3: the second of three shards)")]
    Form,
    /// `n` is 0 or above [`MAX_SHARDS`].
    #[error("the number of shards must be between 1 and {MAX_SHARDS}")]
    Count,
    /// `i` is 0 or above `n`.
    #[error("the shard must be between 1 and the number of shards (shards are counted from 1, as in 1/3, 2/3, 3/3)")]
    Index,
}

impl Shard {
    /// The whole set: one shard of one.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// Shard `index` (1-based) of `count`.
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 || count > MAX_SHARDS {
            return Err(ShardError::Count);
        }
        if index == 0 || index > count {
            return Err(ShardError::Index);
        }
        Ok(Shard { index, count })
    }

    /// The 1-based shard number.
    pub fn index(self) -> u32 {
        self.index
    }

    /// How many shards there are.
    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether this process is one of several.
    pub fn is_sharded(self) -> bool {
        self.count > 1
    }

    /// Whether the account named `name` belongs to this shard.
    pub fn owns(self, name: &str) -> bool {
        shard_of(name, self.count) == self.index
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::ALL
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let (i, n) = s.trim().split_once('/').ok_or(ShardError::Form)?;
        let number = |t: &str| {
            let t = t.trim();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ShardError::Form);
            }
            // All digits: only an overflow fails, and such a number is out of range anyway.
            t.parse::<u32>().map_err(|_| ShardError::Count)
        };
        let (i, n) = (number(i)?, number(n)?);
        if n == 0 || n > MAX_SHARDS {
            return Err(ShardError::Count);
        }
        Shard::new(i, n)
    }
}

/// The 1-based shard of `count` that the account named `name` falls in: the first eight bytes
/// of SHA-256 of the name's UTF-8 bytes, read big-endian, modulo `count`, plus one.
pub fn shard_of(name: &str, count: u32) -> u32 {
    let digest = Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        assert_eq!("2/3".parse(), Shard::new(2, 3));
        assert_eq!(" 1 / 1 ".parse(), Ok(Shard::ALL));
        assert_eq!("3/3".parse::<Shard>().map(|s| s.to_string()), Ok("3/3".into()));
        for (spec, why) in [
            ("", ShardError::Form),
            ("3", ShardError::Form),
            ("a/3", ShardError::Form),
            ("-1/3", ShardError::Form),
            ("1/3/4", ShardError::Form),
            ("1/0", ShardError::Count),
            ("1/1025", ShardError::Count),
            ("1/99999999999", ShardError::Count),
            ("0/3", ShardError::Index),
            ("4/3", ShardError::Index),
        ] {
            assert_eq!(spec.parse::<Shard>(), Err(why), "{spec:?}");
        }
    }

    #[test]
    fn every_account_is_in_exactly_one_shard() {
        let names: Vec<String> = (0..500).map(|i| format!("account-{i}")).collect();
        for n in [1u32, 2, 3, 7, 16] {
            let shards: Vec<Shard> = (1..=n).map(|i| Shard::new(i, n).unwrap()).collect();
            let mut sizes = vec![0usize; n as usize];
            for name in &names {
                let owners: Vec<_> = shards.iter().filter(|s| s.owns(name)).collect();
                assert_eq!(owners.len(), 1, "{name} is in {} of {n} shards", owners.len());
                sizes[owners[0].index() as usize - 1] += 1;
            }
            // A hash that spreads: no shard holds less than half its fair share of 500 names.
            let fair = names.len() / n as usize;
            assert!(sizes.iter().all(|&s| s * 2 >= fair), "{n} shards: {sizes:?}");
        }
    }

    #[test]
    fn the_assignment_is_pinned() {
        // The documented rule, computed independently by coreutils' sha256sum: the first 16 hex
        // digits of the digest, modulo n, plus one.
        let expected = |name: &str, n: u32| {
            let out = std::process::Command::new("sha256sum")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write as _;
                    child.stdin.take().map(|mut s| s.write_all(name.as_bytes()));
                    child.wait_with_output()
                })
                .ok()?;
            let hex = String::from_utf8(out.stdout).ok()?;
            let first = u64::from_str_radix(hex.get(..16)?, 16).ok()?;
            Some((first % u64::from(n)) as u32 + 1)
        };
        for name in ["main", "video", "static.example.com", "ünïcode", ""] {
            for n in [2, 3, 10] {
                match expected(name, n) {
                    Some(e) => assert_eq!(shard_of(name, n), e, "{name:?} of {n}"),
                    None => eprintln!("sha256sum not available; the pinned-hash check is skipped"),
                }
            }
        }
    }
}
