//! Rule schedules: the days on which a rule may open its plan. The manual's Condition Monitor
//! runs each rule on its schedule's days and, on a run, also catches up the days it was
//! scheduled since the last run; condmon monitors continuously, so a violation of a scheduled
//! rule waits for the first scheduled day on or after it began, and a scheduled day passed
//! while nothing ran (condmon stopped, a timer fired late) counts as soon as it runs again.

use std::collections::{BTreeSet, HashSet};

use chrono::{Datelike, Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use super::directory::weekday;

/// A named schedule of the rule document (`[[schedule]]`), named by rules' `schedule`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub id: String,
    #[serde(default)]
    pub description: String,
    pub cadence: Cadence,
}

/// Which days a schedule runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum Cadence {
    /// Every day (a rule without a schedule runs continuously, which is the same).
    Daily,
    /// On the named days of the week (`MON` … `SUN`).
    Weekly { weekdays: Vec<String> },
    /// On a day of each month (1–31; a month without that day runs on its last day).
    Monthly { day: u32 },
    /// On the listed dates only (the manual's user-defined schedule).
    UserDefined { run_days: BTreeSet<NaiveDate> },
}

/// How far a search for the next run day looks (a monthly schedule runs within 31 days; a
/// user-defined one is a list).
const HORIZON_DAYS: i64 = 62;

impl Schedule {
    /// Whether the schedule runs on `date`.
    pub fn runs_on(&self, date: NaiveDate) -> bool {
        match &self.cadence {
            Cadence::Daily => true,
            Cadence::Weekly { weekdays } => {
                weekdays.iter().any(|d| weekday(d) == Some(date.weekday()))
            }
            Cadence::Monthly { day } => date.day() == (*day).min(last_day_of_month(date)),
            Cadence::UserDefined { run_days } => run_days.contains(&date),
        }
    }

    /// Whether a run day falls in `from..=to`: the day a violation began up to today, so a
    /// run day missed in between still counts (the catch-up).
    pub fn runs_between(&self, from: NaiveDate, to: NaiveDate) -> bool {
        if from > to {
            return false;
        }
        if let Cadence::UserDefined { run_days } = &self.cadence {
            return run_days.range(from..=to).next().is_some();
        }
        let days = (to - from).num_days().min(HORIZON_DAYS);
        (0..=days).any(|n| self.runs_on(from + Duration::days(n)))
    }

    /// The first run day after `date`, if there is one within reach.
    pub fn next_run_after(&self, date: NaiveDate) -> Option<NaiveDate> {
        if let Cadence::UserDefined { run_days } = &self.cadence {
            return run_days.range(date.succ_opt()?..).next().copied();
        }
        (1..=HORIZON_DAYS)
            .map(|n| date + Duration::days(n))
            .find(|d| self.runs_on(*d))
    }
}

fn last_day_of_month(date: NaiveDate) -> u32 {
    let (year, month) = if date.month() == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|first| first.pred_opt())
        .map_or(31, |last| last.day())
}

/// Problems of the schedules, and of the schedule names rules give.
pub(super) fn problems<'a>(
    schedules: &[Schedule],
    named: impl Iterator<Item = (String, &'a str)>,
    push: &mut dyn FnMut(String, String),
) {
    let mut ids = HashSet::new();
    for (i, s) in schedules.iter().enumerate() {
        let at = format!("schedule[{i}] ({})", s.id);
        if !ids.insert(s.id.as_str()) {
            push(
                at.clone(),
                format!("schedule id `{}` is defined twice", s.id),
            );
        }
        match &s.cadence {
            Cadence::Daily => {}
            Cadence::Weekly { weekdays } => {
                if weekdays.is_empty() {
                    push(
                        at.clone(),
                        "a weekly schedule needs at least one day".into(),
                    );
                }
                for day in weekdays {
                    if weekday(day).is_none() {
                        push(
                            at.clone(),
                            format!(
                                "`{day}` is not a day name (MON, TUE, WED, THU, FRI, SAT, SUN)"
                            ),
                        );
                    }
                }
            }
            Cadence::Monthly { day } => {
                if !(1..=31).contains(day) {
                    push(at.clone(), format!("day {day} of the month is not 1 to 31"));
                }
            }
            Cadence::UserDefined { run_days } => {
                if run_days.is_empty() {
                    push(at.clone(), "a user-defined schedule needs run days".into());
                }
            }
        }
    }
    for (at, name) in named {
        if !ids.contains(name) {
            push(at, format!("schedule `{name}` is not defined"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn schedule(cadence: Cadence) -> Schedule {
        Schedule {
            id: "S".into(),
            description: String::new(),
            cadence,
        }
    }

    #[test]
    fn weekly_monthly_and_user_defined_days_and_their_catch_up() {
        let mondays = schedule(Cadence::Weekly {
            weekdays: vec!["MON".into()],
        });
        // 2026-12-05 is a Saturday, 2026-12-07 a Monday.
        assert!(mondays.runs_on(d("2026-12-07")));
        assert!(!mondays.runs_on(d("2026-12-08")));
        assert_eq!(
            mondays.next_run_after(d("2026-12-05")),
            Some(d("2026-12-07"))
        );
        assert_eq!(
            mondays.next_run_after(d("2026-12-07")),
            Some(d("2026-12-14"))
        );
        assert!(
            mondays.runs_between(d("2026-12-05"), d("2026-12-08")),
            "Monday missed"
        );
        assert!(!mondays.runs_between(d("2026-12-08"), d("2026-12-13")));
        assert!(
            mondays.runs_between(d("2026-01-01"), d("2026-12-31")),
            "a long wait"
        );

        let month_end = schedule(Cadence::Monthly { day: 31 });
        assert!(month_end.runs_on(d("2026-11-30")), "November has 30 days");
        assert!(month_end.runs_on(d("2026-02-28")));
        assert!(!month_end.runs_on(d("2026-12-30")));
        assert_eq!(
            month_end.next_run_after(d("2026-12-01")),
            Some(d("2026-12-31"))
        );

        let listed = schedule(Cadence::UserDefined {
            run_days: [d("2026-12-15"), d("2027-03-15")].into(),
        });
        assert_eq!(
            listed.next_run_after(d("2026-12-15")),
            Some(d("2027-03-15"))
        );
        assert_eq!(
            listed.next_run_after(d("2027-03-15")),
            None,
            "no more run days"
        );
        assert!(listed.runs_between(d("2026-12-01"), d("2026-12-20")));
        assert!(!listed.runs_between(d("2026-12-16"), d("2027-03-14")));
    }
}
