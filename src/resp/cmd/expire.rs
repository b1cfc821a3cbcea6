//! Key expiry: `EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL EXPIRETIME PEXPIRETIME PERSIST`, and
//! the timeouts `SET`, `SETEX`, `PSETEX` and `GETEX` take.
//!
//! A deadline is part of the key's meta entry (see `keyspace`), so setting, reading and
//! clearing one is an ordinary transactional read and write; "now" is the transaction's own
//! clock ([`now_ms`]). Replies, limits and error texts follow Redis 7 (`expire.c`).

use bytes::Bytes;

use super::ExecContext;
use crate::percolator::Transaction;
use crate::resp::args::{int_arg, is_keyword};
use crate::resp::error::{CommandError, CommandResult};
use crate::resp::keyspace::{Entry, delete_entry, now_ms, read_entry, write_entry};
use crate::resp::reply::Reply;

/// A timeout as a command states it, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// `EX`/`PX`/`EXPIRE`/`PEXPIRE`: this long after the command's instant.
    After(i64),
    /// `EXAT`/`PXAT`/`EXPIREAT`/`PEXPIREAT`: at this Unix time.
    At(i64),
}

impl Timeout {
    /// The timeout of option `unit` (`EX`, `PX`, `EXAT` or `PXAT`) with argument `amount`, as
    /// `SET`, `GETEX` and `SETEX` take it: a positive integer (`command` names the command in
    /// the error, as Redis does).
    pub fn positive(unit: &str, amount: &Bytes, command: &str) -> CommandResult<Timeout> {
        let amount = int_arg(amount)?;
        let seconds = unit.eq_ignore_ascii_case("EX") || unit.eq_ignore_ascii_case("EXAT");
        if amount <= 0 || (seconds && amount > i64::MAX / 1000) {
            return Err(invalid(command));
        }
        let ms = if seconds { amount * 1000 } else { amount };
        Ok(if unit.len() == 2 {
            Timeout::After(ms)
        } else {
            Timeout::At(ms)
        })
    }

    /// The deadline at `now`, or `invalid expire time` if it overflows.
    fn deadline(self, now: u64, command: &str) -> CommandResult<i64> {
        match self {
            Timeout::After(ms) => ms.checked_add(now as i64).ok_or_else(|| invalid(command)),
            Timeout::At(ms) => Ok(ms),
        }
    }

    /// The deadline to store for a key written now with this timeout (never below zero; one in
    /// the past makes the key expired at once).
    pub fn stored_deadline(self, now: u64, command: &str) -> CommandResult<u64> {
        let deadline = self.deadline(now, command)?;
        if deadline <= 0 {
            return Err(invalid(command));
        }
        Ok(deadline as u64)
    }
}

fn invalid(command: &str) -> CommandError {
    CommandError::Other(format!("invalid expire time in '{command}' command"))
}

/// `EXPIRE`'s `NX | XX | GT | LT`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Only if the key has no timeout.
    nx: bool,
    /// Only if the key has a timeout.
    xx: bool,
    /// Only if the new deadline is later (no timeout counts as infinite).
    gt: bool,
    /// Only if the new deadline is earlier.
    lt: bool,
}

impl Conditions {
    fn parse(options: &[Bytes]) -> CommandResult<Conditions> {
        let mut c = Conditions::default();
        for option in options {
            if is_keyword(option, "NX") {
                c.nx = true;
            } else if is_keyword(option, "XX") {
                c.xx = true;
            } else if is_keyword(option, "GT") {
                c.gt = true;
            } else if is_keyword(option, "LT") {
                c.lt = true;
            } else {
                return Err(CommandError::Other(format!(
                    "Unsupported option {}",
                    String::from_utf8_lossy(option)
                )));
            }
        }
        if c.nx && (c.xx || c.gt || c.lt) {
            return Err(CommandError::Other(
                "NX and XX, GT or LT options at the same time are not compatible".into(),
            ));
        }
        if c.gt && c.lt {
            return Err(CommandError::Other(
                "GT and LT options at the same time are not compatible".into(),
            ));
        }
        Ok(c)
    }

    /// Whether a key whose deadline is `current` may get `new`.
    fn allow(self, current: Option<u64>, new: i64) -> bool {
        match current {
            None => !(self.xx || self.gt),
            Some(current) => {
                let current = current as i64;
                !(self.nx || (self.gt && new <= current) || (self.lt && new >= current))
            }
        }
    }
}

/// What `TTL` and its siblings answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtlForm {
    /// `TTL`: seconds left, rounded.
    Seconds,
    /// `PTTL`: milliseconds left.
    Millis,
    /// `EXPIRETIME`: the deadline in Unix seconds, rounded.
    AtSeconds,
    /// `PEXPIRETIME`: the deadline in Unix milliseconds.
    AtMillis,
}

pub enum ExpireCommand {
    Expire {
        key: Bytes,
        timeout: Timeout,
        conditions: Conditions,
        /// The command's name, for its errors.
        name: &'static str,
    },
    Ttl(Bytes, TtlForm),
    Persist(Bytes),
}

impl ExpireCommand {
    pub fn parse(name: &str, args: &[Bytes]) -> CommandResult<Option<ExpireCommand>> {
        let key = || args[0].clone();
        Ok(Some(match name {
            "expire" | "pexpire" | "expireat" | "pexpireat" => {
                // Redis checks the options before the amount.
                let conditions = Conditions::parse(&args[2..])?;
                let amount = int_arg(&args[1])?;
                let (seconds, name, absolute) = match name {
                    "expire" => (true, "expire", false),
                    "pexpire" => (false, "pexpire", false),
                    "expireat" => (true, "expireat", true),
                    _ => (false, "pexpireat", true),
                };
                let ms = if seconds {
                    amount.checked_mul(1000).ok_or_else(|| invalid(name))?
                } else {
                    amount
                };
                ExpireCommand::Expire {
                    key: key(),
                    timeout: if absolute {
                        Timeout::At(ms)
                    } else {
                        Timeout::After(ms)
                    },
                    conditions,
                    name,
                }
            }
            "ttl" => ExpireCommand::Ttl(key(), TtlForm::Seconds),
            "pttl" => ExpireCommand::Ttl(key(), TtlForm::Millis),
            "expiretime" => ExpireCommand::Ttl(key(), TtlForm::AtSeconds),
            "pexpiretime" => ExpireCommand::Ttl(key(), TtlForm::AtMillis),
            "persist" => ExpireCommand::Persist(key()),
            _ => return Ok(None),
        }))
    }

    pub async fn exec<T: Transaction>(&self, txn: &mut T, _ctx: &mut ExecContext<'_>) -> CommandResult {
        let now = now_ms(txn);
        match self {
            ExpireCommand::Expire {
                key,
                timeout,
                conditions,
                name,
            } => {
                let deadline = timeout.deadline(now, name)?;
                let Some(entry) = read_entry(txn, key).await? else {
                    return Ok(Reply::Integer(0));
                };
                if !conditions.allow(entry.expires_at, deadline) {
                    return Ok(Reply::Integer(0));
                }
                if deadline <= now as i64 {
                    // Already past: the key goes now.
                    delete_entry(txn, key, &entry);
                } else {
                    let updated = Entry::new(entry.value.clone(), Some(deadline as u64));
                    write_entry(txn, key, &updated, Some(&entry));
                }
                Ok(Reply::Integer(1))
            }
            ExpireCommand::Ttl(key, form) => {
                let Some(entry) = read_entry(txn, key).await? else {
                    return Ok(Reply::Integer(-2));
                };
                let Some(deadline) = entry.expires_at else {
                    return Ok(Reply::Integer(-1));
                };
                let left = deadline.saturating_sub(now);
                Ok(Reply::Integer(match form {
                    TtlForm::Seconds => ((left + 500) / 1000) as i64,
                    TtlForm::Millis => left as i64,
                    TtlForm::AtSeconds => ((deadline + 500) / 1000) as i64,
                    TtlForm::AtMillis => deadline as i64,
                }))
            }
            ExpireCommand::Persist(key) => match read_entry(txn, key).await? {
                Some(entry) if entry.expires_at.is_some() => {
                    let updated = Entry::new(entry.value.clone(), None);
                    write_entry(txn, key, &updated, Some(&entry));
                    Ok(Reply::Integer(1))
                }
                _ => Ok(Reply::Integer(0)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<Bytes> {
        list.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn expire_conditions_combine_as_in_redis() {
        let err = |options: &[&str]| match Conditions::parse(&words(options)) {
            Err(CommandError::Other(text)) => text,
            other => panic!("{options:?}: {other:?}"),
        };
        assert!(err(&["NX", "XX"]).starts_with("NX and XX, GT or LT"));
        assert!(err(&["NX", "GT"]).starts_with("NX and XX, GT or LT"));
        assert!(err(&["GT", "LT"]).starts_with("GT and LT"));
        assert_eq!(err(&["LATER"]), "Unsupported option LATER");
        let c = |options: &[&str]| Conditions::parse(&words(options)).unwrap();
        // No timeout counts as infinite for GT and LT.
        assert!(!c(&["GT"]).allow(None, 10));
        assert!(c(&["LT"]).allow(None, 10));
        assert!(c(&["GT"]).allow(Some(5), 10));
        assert!(!c(&["GT"]).allow(Some(10), 10));
        assert!(c(&["LT"]).allow(Some(15), 10));
        assert!(!c(&["LT"]).allow(Some(10), 10));
        assert!(c(&["NX"]).allow(None, 10) && !c(&["NX"]).allow(Some(1), 10));
        assert!(!c(&["XX"]).allow(None, 10) && c(&["XX"]).allow(Some(1), 10));
        assert!(c(&["XX", "GT"]).allow(Some(1), 10) && !c(&["XX", "GT"]).allow(None, 10));
    }

    #[test]
    fn set_style_timeouts_are_positive_and_do_not_overflow() {
        let t = |unit: &str, amount: &str| {
            Timeout::positive(unit, &Bytes::copy_from_slice(amount.as_bytes()), "set")
        };
        assert_eq!(t("EX", "10").unwrap(), Timeout::After(10_000));
        assert_eq!(t("px", "10").unwrap(), Timeout::After(10));
        assert_eq!(t("EXAT", "10").unwrap(), Timeout::At(10_000));
        assert_eq!(t("PXAT", "10").unwrap(), Timeout::At(10));
        for (unit, amount) in [("EX", "0"), ("PX", "-1"), ("EX", "9223372036854775807")] {
            assert!(
                matches!(t(unit, amount), Err(CommandError::Other(ref e)) if e == "invalid expire time in 'set' command"),
                "{unit} {amount}"
            );
        }
        assert!(matches!(t("EX", "ten"), Err(CommandError::NotInteger)));
        let near_max = Timeout::After(i64::MAX - 5);
        assert!(near_max.stored_deadline(10, "set").is_err());
        assert_eq!(Timeout::After(5).stored_deadline(10, "set").unwrap(), 15);
    }
}
