//! The clock, and durable timers kept in RocksDB.
//!
//! Domain code never reads the system clock: it is handed a [`Clock`]. Production uses
//! [`SystemClock`]; tests and `condmon replay` use a [`ManualClock`] they move themselves.
//!
//! A timer is (partition, customer key, name) → due date, stored twice: by due date (to find
//! what is due, in order) and by key (to replace or cancel a key's timers). A timer that fell
//! due while the process was down is simply found due on the next scan, and fires once.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};

use crate::model::CustomerKey;
use crate::state::{StateError, StoreName, Txn};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;

    /// The business date. Business units share one time zone (UTC) for now.
    fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }

    /// How long from `now` (as this clock read it) until it may show another business date:
    /// an idle run loop sleeps no longer, so a day's timers fire as the day begins rather than
    /// up to a tick later. For a clock that keeps time, the next midnight (UTC) and a
    /// millisecond.
    fn until_next_day(&self, now: DateTime<Utc>) -> std::time::Duration {
        let next = now
            .date_naive()
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc());
        next.and_then(|next| (next - now).to_std().ok())
            .map_or(std::time::Duration::MAX, |d| {
                d + std::time::Duration::from_millis(1)
            })
    }
}

/// How often an idle run loop looks at a [`FileClock`]: a rehearsal that writes a new date
/// sees its timers fire within this, as a system clock's do at midnight.
pub const FILE_CLOCK_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// The business date the run loop decides on, guarded against the system clock: it never
/// moves backwards, and a jump forward larger than the time that passed allows (more than
/// `max_jump_days` beyond it) is not followed. The date is held where it was and timers do not
/// fire (no day of letters and holds sent early), until the clock and the time that passed
/// agree again or the process is restarted on purpose (a restart accepts the clock's date: a
/// stopped process has no measure of the time that passed).
#[derive(Debug, Clone)]
pub struct BusinessDate {
    max_jump_days: i64,
    /// The date accepted last, and when (monotonic).
    accepted: Option<(NaiveDate, std::time::Instant)>,
}

/// What the guard says about a reading of the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateReading {
    /// The business date to decide on.
    pub date: NaiveDate,
    /// False while a jump is held: timers must not fire.
    pub timers_allowed: bool,
    /// The clock read an earlier date than the one accepted (it is ignored).
    pub backwards: bool,
    /// Days the clock is ahead of what the time that passed allows, while held.
    pub held_days: i64,
}

impl BusinessDate {
    pub fn new(max_jump_days: u32) -> Self {
        BusinessDate {
            max_jump_days: i64::from(max_jump_days),
            accepted: None,
        }
    }

    /// The date to decide on, given the clock's date `wall` read at monotonic instant `now`.
    pub fn read(&mut self, wall: NaiveDate, now: std::time::Instant) -> DateReading {
        let Some((date, at)) = self.accepted else {
            self.accepted = Some((wall, now));
            return DateReading {
                date: wall,
                timers_allowed: true,
                backwards: false,
                held_days: 0,
            };
        };
        if wall < date {
            return DateReading {
                date,
                timers_allowed: true,
                backwards: true,
                held_days: 0,
            };
        }
        let passed_days = (now.saturating_duration_since(at).as_secs() / 86_400) as i64;
        let ahead = (wall - date).num_days() - passed_days;
        if ahead > self.max_jump_days {
            return DateReading {
                date,
                timers_allowed: false,
                backwards: false,
                held_days: ahead,
            };
        }
        if wall > date {
            self.accepted = Some((wall, now));
        }
        DateReading {
            date: wall,
            timers_allowed: true,
            backwards: false,
            held_days: 0,
        }
    }
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to, and never backwards.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(start))
    }

    pub fn starting_on(date: NaiveDate) -> Self {
        Self::new(
            date.and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc(),
        )
    }

    /// Moves the clock to `to` if that is later than now.
    pub fn advance_to(&self, to: DateTime<Utc>) {
        let mut now = self.0.lock().expect("clock lock");
        if to > *now {
            *now = to;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

/// A clock read from a file holding a date or an RFC 3339 time, for rehearsals and tests of
/// the running process: writing a later date into the file moves `condmon run` forward in time.
/// An unreadable file or a date earlier than the last one read leaves the clock where it was.
pub struct FileClock {
    path: std::path::PathBuf,
    last: Mutex<DateTime<Utc>>,
}

impl FileClock {
    pub fn new(path: std::path::PathBuf) -> Result<Self, String> {
        let start = read_moment(&path)?;
        Ok(FileClock {
            path,
            last: Mutex::new(start),
        })
    }
}

fn read_moment(path: &std::path::Path) -> Result<DateTime<Utc>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_moment(text.trim()).ok_or_else(|| {
        format!(
            "{}: `{}` is not a date or RFC 3339 time",
            path.display(),
            text.trim()
        )
    })
}

/// A date (midnight UTC) or an RFC 3339 time.
pub fn parse_moment(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(date) = s.parse::<NaiveDate>() {
        return date.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Clock for FileClock {
    fn now(&self) -> DateTime<Utc> {
        let mut last = self.last.lock().expect("clock lock");
        if let Ok(read) = read_moment(&self.path)
            && read > *last
        {
            *last = read;
        }
        *last
    }

    /// The file may be written at any moment: look again soon.
    fn until_next_day(&self, _now: DateTime<Utc>) -> std::time::Duration {
        FILE_CLOCK_POLL
    }
}

/// Days since 1970-01-01, shifted so the big-endian bytes sort like the dates.
fn date_bytes(date: NaiveDate) -> [u8; 4] {
    let days = (date - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
    ((days as u32) ^ 0x8000_0000).to_be_bytes()
}

fn date_from_bytes(bytes: &[u8]) -> Option<NaiveDate> {
    let raw = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) ^ 0x8000_0000;
    NaiveDate::from_ymd_opt(1970, 1, 1)?
        .checked_add_signed(chrono::Duration::days(i64::from(raw as i32)))
}

/// `len(key) key name`: self-delimiting, so one key's timers are one prefix.
fn key_part(key: &CustomerKey, name: &str) -> Vec<u8> {
    crate::state::customer_key(&key.encode(), name)
}

fn split_key_part(bytes: &[u8]) -> Option<(CustomerKey, String)> {
    let (key, name) = crate::state::split_customer_key(bytes)?;
    Some((CustomerKey::decode(key)?, name.to_string()))
}

fn corrupt(store: StoreName) -> StateError {
    StateError::Corrupt {
        store: store.as_str().into(),
        message: "undecodable timer key".into(),
    }
}

/// A timer that has come due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    pub due: NaiveDate,
    pub key: CustomerKey,
    pub name: String,
}

/// The durable per-partition counter of pending timers (kept in the same write batch as the
/// timers themselves, so it is exact across restarts).
pub const TIMERS_PENDING: &str = "timers.pending";

/// Timer operations on one partition within a transaction.
pub struct Timers<'t, 's> {
    pub txn: &'t mut Txn<'s>,
    pub partition: i32,
}

impl Timers<'_, '_> {
    /// The timers of `key`, by name.
    pub fn for_key(&self, key: &CustomerKey) -> Result<Vec<(String, NaiveDate)>, StateError> {
        let prefix = key_part(key, "");
        self.txn
            .scan(self.partition, StoreName::Timers, &prefix, |k| {
                k.starts_with(&prefix)
            })?
            .into_iter()
            .map(|(k, v)| {
                let (_, name) = split_key_part(&k).ok_or_else(|| corrupt(StoreName::Timers))?;
                let due = date_from_bytes(&v).ok_or_else(|| corrupt(StoreName::Timers))?;
                Ok((name, due))
            })
            .collect()
    }

    /// Sets `key`'s timer `name` to `due`, replacing an earlier one of the same name.
    pub fn set(&mut self, key: &CustomerKey, name: &str, due: NaiveDate) -> Result<(), StateError> {
        let by_key = key_part(key, name);
        let old = match self.txn.get(self.partition, StoreName::Timers, &by_key)? {
            Some(old) => Some(date_from_bytes(&old).ok_or_else(|| corrupt(StoreName::Timers))?),
            None => None,
        };
        if old == Some(due) {
            return Ok(());
        }
        self.write(key, name, old, due)
    }

    /// Writes timer `name` due on `due` where it was due on `old` (`None`: not set).
    fn write(
        &mut self,
        key: &CustomerKey,
        name: &str,
        old: Option<NaiveDate>,
        due: NaiveDate,
    ) -> Result<(), StateError> {
        let by_key = key_part(key, name);
        match old {
            Some(old_due) => self.txn.delete(
                self.partition,
                StoreName::TimersByDue,
                &due_key(old_due, &by_key),
            ),
            None => self.txn.add_to_counter(self.partition, TIMERS_PENDING, 1)?,
        }
        self.txn.put(
            self.partition,
            StoreName::Timers,
            &by_key,
            date_bytes(due).to_vec(),
        );
        self.txn.put(
            self.partition,
            StoreName::TimersByDue,
            &due_key(due, &by_key),
            Vec::new(),
        );
        Ok(())
    }

    pub fn cancel(&mut self, key: &CustomerKey, name: &str) -> Result<(), StateError> {
        let by_key = key_part(key, name);
        if let Some(old) = self.txn.get(self.partition, StoreName::Timers, &by_key)? {
            let old_due = date_from_bytes(&old).ok_or_else(|| corrupt(StoreName::Timers))?;
            self.remove(key, name, old_due)?;
        }
        Ok(())
    }

    /// Removes timer `name`, set to `due`.
    fn remove(&mut self, key: &CustomerKey, name: &str, due: NaiveDate) -> Result<(), StateError> {
        let by_key = key_part(key, name);
        self.txn.delete(
            self.partition,
            StoreName::TimersByDue,
            &due_key(due, &by_key),
        );
        self.txn.delete(self.partition, StoreName::Timers, &by_key);
        self.txn.add_to_counter(self.partition, TIMERS_PENDING, -1)
    }

    /// Makes `key`'s timers exactly `wanted`, by difference from what is set (`set`, as the
    /// customer's ledger lists it, or one scan when it lists none): only the new, moved and
    /// dropped timers are written (most evaluations change none). Returns the timers now set,
    /// by name, for the ledger to list.
    pub fn replace_all(
        &mut self,
        key: &CustomerKey,
        wanted: &[(String, NaiveDate)],
        set: Option<Vec<(String, NaiveDate)>>,
    ) -> Result<Vec<(String, NaiveDate)>, StateError> {
        // A name wanted twice is due on its last date, as setting the timers one by one would.
        let wanted: BTreeMap<&str, NaiveDate> =
            wanted.iter().map(|(n, due)| (n.as_str(), *due)).collect();
        let current: BTreeMap<String, NaiveDate> = match set {
            Some(listed) => {
                let listed: BTreeMap<String, NaiveDate> = listed.into_iter().collect();
                debug_assert_eq!(
                    listed,
                    self.for_key(key)?.into_iter().collect::<BTreeMap<_, _>>(),
                    "{}: the ledger lists other timers than the timer store holds",
                    key.encode()
                );
                listed
            }
            None => self.for_key(key)?.into_iter().collect(),
        };
        for (name, due) in &current {
            match wanted.get(name.as_str()) {
                Some(want) if want == due => {}
                Some(want) => self.write(key, name, Some(*due), *want)?,
                None => self.remove(key, name, *due)?,
            }
        }
        for (name, due) in &wanted {
            if !current.contains_key(*name) {
                self.write(key, name, None, *due)?;
            }
        }
        Ok(wanted
            .into_iter()
            .map(|(name, due)| (name.to_string(), due))
            .collect())
    }

    /// Every timer due on or before `today`, in due order. They stay set until cancelled.
    pub fn due(&self, today: NaiveDate) -> Result<Vec<DueTimer>, StateError> {
        Ok(self.due_from(today, None, usize::MAX)?.0)
    }

    /// [`Timers::due`], at most `limit` of them, after `after` (a position this returned
    /// before): the timers and the position to go on from, `None` when none are left.
    pub fn due_from(
        &self,
        today: NaiveDate,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<DueTimer>, Option<Vec<u8>>), StateError> {
        let until = date_bytes(today);
        // The next key after `after`: itself with a zero byte appended.
        let from = after.map_or_else(Vec::new, |a| [a, &[0]].concat());
        let scanned = self.txn.scan_limited(
            self.partition,
            StoreName::TimersByDue,
            &from,
            |k| k[..4] <= until[..],
            limit,
        )?;
        let timers = scanned
            .entries
            .into_iter()
            .map(|(k, _)| {
                let due = date_from_bytes(&k).ok_or_else(|| corrupt(StoreName::TimersByDue))?;
                let (key, name) =
                    split_key_part(&k[4..]).ok_or_else(|| corrupt(StoreName::TimersByDue))?;
                Ok(DueTimer { due, key, name })
            })
            .collect::<Result<_, StateError>>()?;
        Ok((timers, scanned.resume_after))
    }

    /// The earliest due date of any timer of this partition.
    pub fn next_due(&self) -> Result<Option<NaiveDate>, StateError> {
        let first = self.txn.first_key(self.partition, StoreName::TimersByDue)?;
        Ok(first.and_then(|k| date_from_bytes(&k)))
    }
}

/// Rebuilds `timers-by-due` of `partition` from `timers` (after a restore wrote `timers`),
/// and sets the count of pending timers to what is there.
pub fn rebuild_due_index(store: &crate::state::Store, partition: i32) -> Result<(), StateError> {
    let index = store
        .entries(partition, StoreName::Timers)?
        .into_iter()
        .map(|(by_key, due)| {
            let due = date_from_bytes(&due).ok_or_else(|| corrupt(StoreName::Timers))?;
            Ok((due_key(due, &by_key), Vec::new()))
        })
        .collect::<Result<Vec<_>, StateError>>()?;
    let pending = index.len() as i64;
    store.rewrite(partition, StoreName::TimersByDue, index)?;
    let mut txn = store.txn();
    let was = store.counters(partition)?.get(TIMERS_PENDING).copied();
    txn.add_to_counter(partition, TIMERS_PENDING, pending - was.unwrap_or(0))?;
    store.commit(txn, &[])
}

/// The timer a restore sets for a customer whose ledger lists no timers (one written before
/// ledgers listed them): due at once, its firing decides the customer again, which sets the
/// customer's own timers and drops this one.
pub const RESTORED: &str = "restored";

/// When [`RESTORED`] is due: before any business date.
pub fn restored_due() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date")
}

/// A timer as the `timers` store holds it: key and value.
pub fn stored(key: &CustomerKey, name: &str, due: NaiveDate) -> (Vec<u8>, Vec<u8>) {
    (key_part(key, name), date_bytes(due).to_vec())
}

/// The customer (encoded) a key of the `timers` store belongs to.
pub fn customer_of(by_key: &[u8]) -> Option<&str> {
    crate::state::split_customer_key(by_key).map(|(customer, _)| customer)
}

fn due_key(due: NaiveDate, by_key: &[u8]) -> Vec<u8> {
    let mut out = date_bytes(due).to_vec();
    out.extend_from_slice(by_key);
    out
}

#[cfg(test)]
mod tests {
    /// An idle loop wakes when the business day may change: at midnight for the system
    /// clock, within `FILE_CLOCK_POLL` for a file a rehearsal may write at any moment.
    #[test]
    fn an_idle_loop_wakes_when_the_next_business_day_may_begin() {
        use super::*;
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let ms = std::time::Duration::from_millis;
        assert_eq!(
            SystemClock.until_next_day(at("2026-03-01T23:59:59.500Z")),
            ms(501)
        );
        assert_eq!(
            SystemClock.until_next_day(at("2026-03-01T00:00:00Z")),
            std::time::Duration::from_secs(86_400) + ms(1)
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "2026-03-01").unwrap();
        let clock = FileClock::new(file.path().to_path_buf()).unwrap();
        assert_eq!(clock.until_next_day(clock.now()), FILE_CLOCK_POLL);
        assert!(FILE_CLOCK_POLL <= ms(100));
    }

    /// The business date follows the clock day by day, never goes back, and holds a jump
    /// the time that passed does not explain until it does.
    #[test]
    fn the_business_date_never_goes_back_and_holds_a_clock_jump() {
        let day = std::time::Duration::from_secs(86_400);
        let start = std::time::Instant::now();
        let mut guard = BusinessDate::new(1);
        let first = guard.read(d("2026-03-02"), start);
        assert_eq!((first.date, first.timers_allowed), (d("2026-03-02"), true));
        // Midnight, a few minutes later: followed (one day is the bound).
        let next = guard.read(d("2026-03-03"), start + std::time::Duration::from_secs(300));
        assert_eq!((next.date, next.timers_allowed), (d("2026-03-03"), true));
        // The clock steps back a day: the date stays.
        let back = guard.read(d("2026-03-02"), start + std::time::Duration::from_secs(600));
        assert_eq!((back.date, back.backwards), (d("2026-03-03"), true));
        // It jumps eighteen days in a few minutes: held, no timers.
        let jump = guard.read(d("2026-03-21"), start + std::time::Duration::from_secs(900));
        assert_eq!(
            (jump.date, jump.timers_allowed, jump.held_days),
            (d("2026-03-03"), false, 18)
        );
        // Once the time that passed explains it (17 days later, within the bound), followed.
        let caught_up = guard.read(
            d("2026-03-21"),
            start + day * 17 + std::time::Duration::from_secs(3600),
        );
        assert_eq!(
            (caught_up.date, caught_up.timers_allowed),
            (d("2026-03-21"), true)
        );
        // A process that starts accepts the clock's date: it has no measure of the time.
        let mut restarted = BusinessDate::new(1);
        assert!(restarted.read(d("2026-06-01"), start).timers_allowed);
    }

    use super::*;
    use crate::state::Store;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn date_bytes_sort_like_dates_including_before_1970() {
        let dates = [
            d("1969-12-31"),
            d("1970-01-01"),
            d("2026-11-23"),
            d("2100-01-01"),
        ];
        for pair in dates.windows(2) {
            assert!(date_bytes(pair[0]) < date_bytes(pair[1]));
        }
        for date in dates {
            assert_eq!(date_from_bytes(&date_bytes(date)), Some(date));
        }
    }

    #[test]
    fn timers_fire_in_due_order_survive_a_reopen_and_can_be_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (CustomerKey::new("S", "A"), CustomerKey::new("S", "B"));
        {
            let store = Store::open(dir.path()).unwrap();
            store.ensure_partition(1).unwrap();
            let mut txn = store.txn();
            let mut timers = Timers {
                txn: &mut txn,
                partition: 1,
            };
            timers.set(&a, "age", d("2026-03-05")).unwrap();
            timers.set(&b, "age", d("2026-03-01")).unwrap();
            timers.set(&a, "action:1", d("2026-04-01")).unwrap();
            // Moving a timer leaves no trace of its old due date.
            timers.set(&b, "age", d("2026-03-02")).unwrap();
            store.commit(txn, &[]).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.counters(1).unwrap()[TIMERS_PENDING], 3);
        let mut txn = store.txn();
        let mut timers = Timers {
            txn: &mut txn,
            partition: 1,
        };
        assert_eq!(timers.next_due().unwrap(), Some(d("2026-03-02")));
        let due: Vec<_> = timers
            .due(d("2026-03-31"))
            .unwrap()
            .into_iter()
            .map(|t| (t.key, t.name))
            .collect();
        assert_eq!(
            due,
            vec![
                (b.clone(), "age".to_string()),
                (a.clone(), "age".to_string())
            ]
        );

        // Pending deletions and additions count before the commit.
        timers.cancel(&b, "age").unwrap();
        assert_eq!(timers.next_due().unwrap(), Some(d("2026-03-05")));
        timers.set(&b, "age", d("2026-02-01")).unwrap();
        assert_eq!(timers.next_due().unwrap(), Some(d("2026-02-01")));
        timers.cancel(&b, "age").unwrap();

        timers
            .replace_all(&a, &[("age".into(), d("2026-05-01"))], None)
            .unwrap();
        assert_eq!(
            timers.for_key(&a).unwrap(),
            vec![("age".to_string(), d("2026-05-01"))]
        );
        store.commit(txn, &[]).unwrap();
        assert_eq!(store.counters(1).unwrap()[TIMERS_PENDING], 1);
    }

    #[test]
    fn replacing_a_customer_s_timers_writes_only_the_difference_and_keeps_the_index_exact() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.ensure_partition(0).unwrap();
        let a = CustomerKey::new("SHARE", "A");
        let mut txn = store.txn();
        let mut timers = Timers {
            txn: &mut txn,
            partition: 0,
        };
        // The first time by a scan of the store (nothing listed).
        let listed = timers
            .replace_all(
                &a,
                &[
                    ("keep".into(), d("2026-03-01")),
                    ("move".into(), d("2026-03-02")),
                    ("drop".into(), d("2026-03-03")),
                ],
                None,
            )
            .unwrap();
        store.commit(txn, &[]).unwrap();

        let mut txn = store.txn();
        let mut timers = Timers {
            txn: &mut txn,
            partition: 0,
        };
        let listed_now = timers
            .replace_all(
                &a,
                &[
                    ("keep".into(), d("2026-03-01")),
                    ("move".into(), d("2026-04-02")),
                    // Wanted twice: its last date, one entry in the due index.
                    ("new".into(), d("2026-03-10")),
                    ("new".into(), d("2026-03-04")),
                ],
                // Then from the list the ledger keeps of what the first call set.
                Some(listed),
            )
            .unwrap();
        let mut set = timers.for_key(&a).unwrap();
        set.sort();
        assert_eq!(
            listed_now, set,
            "what it returns for the ledger is what is set"
        );
        assert_eq!(
            set,
            vec![
                ("keep".to_string(), d("2026-03-01")),
                ("move".to_string(), d("2026-04-02")),
                ("new".to_string(), d("2026-03-04")),
            ]
        );
        // The due index moved with them: nothing left at the old dates.
        let due: Vec<(NaiveDate, String)> = timers
            .due(d("2026-12-31"))
            .unwrap()
            .into_iter()
            .map(|t| (t.due, t.name))
            .collect();
        assert_eq!(
            due,
            vec![
                (d("2026-03-01"), "keep".to_string()),
                (d("2026-03-04"), "new".to_string()),
                (d("2026-04-02"), "move".to_string()),
            ]
        );
        let changes = txn.finish(&[]);
        let timer_writes = changes
            .writes
            .keys()
            .filter(|(_, store, _)| *store == StoreName::Timers)
            .count();
        assert_eq!(
            timer_writes, 3,
            "moved, new and dropped; the kept one untouched"
        );
        store.apply(&changes).unwrap();
        assert_eq!(store.counters(0).unwrap()[TIMERS_PENDING], 3);
    }
}
