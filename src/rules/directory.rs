//! The directory the rule document carries beside the rules: business calendars (which days
//! count for due and notification dates) and action owners (who supervises whom, where their
//! e-mail goes).

use std::collections::{BTreeSet, HashSet};

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// A business unit's calendar: weekends and holidays are not business days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    pub id: String,
    /// The business units that use it.
    pub business_units: Vec<String>,
    /// Three-letter day names (`SAT`, `SUN`).
    #[serde(default = "default_weekend")]
    pub weekend: Vec<String>,
    #[serde(default)]
    pub holidays: BTreeSet<NaiveDate>,
}

fn default_weekend() -> Vec<String> {
    vec!["SAT".into(), "SUN".into()]
}

/// The calendar of a business unit without one of its own: Saturday and Sunday off.
pub static STANDARD_CALENDAR: std::sync::LazyLock<Calendar> =
    std::sync::LazyLock::new(|| Calendar {
        id: "STANDARD".into(),
        business_units: Vec::new(),
        weekend: default_weekend(),
        holidays: BTreeSet::new(),
    });

pub(super) fn weekday(name: &str) -> Option<Weekday> {
    // Without allocating: a calendar is asked for every business day of every due date.
    const DAYS: [(&str, Weekday); 7] = [
        ("MON", Weekday::Mon),
        ("TUE", Weekday::Tue),
        ("WED", Weekday::Wed),
        ("THU", Weekday::Thu),
        ("FRI", Weekday::Fri),
        ("SAT", Weekday::Sat),
        ("SUN", Weekday::Sun),
    ];
    DAYS.iter()
        .find(|(day, _)| day.eq_ignore_ascii_case(name))
        .map(|(_, weekday)| *weekday)
}

impl Calendar {
    pub fn is_business_day(&self, date: NaiveDate) -> bool {
        !self.holidays.contains(&date)
            && !self
                .weekend
                .iter()
                .any(|d| weekday(d) == Some(date.weekday()))
    }

    /// `date` moved by `days` business days: forward when positive, back when negative.
    /// Weekends and holidays are skipped, as the manual's due and notification dates skip them.
    /// 0 is `date` itself if it is a business day, else the next business day: something due
    /// "in 0 business days" on a Saturday is due on Monday, so a due date is always a day
    /// someone works.
    pub fn add_business_days(&self, date: NaiveDate, days: i32) -> NaiveDate {
        if days == 0 {
            return self.add_business_days(date - Duration::days(1), 1);
        }
        let step = Duration::days(if days < 0 { -1 } else { 1 });
        let mut left = days.unsigned_abs();
        let mut current = date;
        // A calendar with every weekday off is refused by validation; the bound is a guard.
        let mut guard = 0;
        while left > 0 && guard < 100_000 {
            current += step;
            guard += 1;
            if self.is_business_day(current) {
                left -= 1;
            }
        }
        current
    }
}

/// Someone actions are assigned to, with who supervises them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    /// The user id the customer master and items name (collector, analyst, specialist...).
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub supervisor: Option<String>,
}

pub(super) fn problems(
    calendars: &[Calendar],
    owners: &[Owner],
    push: &mut dyn FnMut(String, String),
) {
    let mut units = HashSet::new();
    let mut ids = HashSet::new();
    for (i, c) in calendars.iter().enumerate() {
        let at = format!("calendar[{i}] ({})", c.id);
        if !ids.insert(c.id.as_str()) {
            push(
                at.clone(),
                format!("calendar id `{}` is defined twice", c.id),
            );
        }
        for unit in &c.business_units {
            if !units.insert(unit.as_str()) {
                push(
                    at.clone(),
                    format!("business unit `{unit}` has another calendar already"),
                );
            }
        }
        let mut off = HashSet::new();
        for day in &c.weekend {
            match weekday(day) {
                Some(d) => {
                    off.insert(d);
                }
                None => push(
                    at.clone(),
                    format!("`{day}` is not a day name (MON, TUE, WED, THU, FRI, SAT, SUN)"),
                ),
            }
        }
        if off.len() == 7 {
            push(at.clone(), "every day of the week is a weekend day".into());
        }
    }
    let known: HashSet<&str> = owners.iter().map(|o| o.id.as_str()).collect();
    let mut seen = HashSet::new();
    for (i, o) in owners.iter().enumerate() {
        let at = format!("owner[{i}] ({})", o.id);
        if o.id.trim().is_empty() {
            push(at.clone(), "id is empty".into());
        }
        if !seen.insert(o.id.as_str()) {
            push(at.clone(), format!("owner `{}` is defined twice", o.id));
        }
        let valid_email = o
            .email
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'));
        if !valid_email {
            push(
                at.clone(),
                format!("`{}` is not an e-mail address", o.email),
            );
        }
        match o.supervisor.as_deref() {
            Some(s) if s == o.id => push(at.clone(), "an owner cannot supervise itself".into()),
            Some(s) if !known.contains(s) => {
                push(at.clone(), format!("supervisor `{s}` is not an owner"))
            }
            _ => {}
        }
    }
    // A chain of supervisors must end: a cycle would make "the supervisor's supervisor"
    // endless and means the directory is wrong.
    for o in owners {
        let mut chain = HashSet::from([o.id.as_str()]);
        let mut next = o.supervisor.as_deref();
        while let Some(s) = next {
            if !chain.insert(s) {
                push(
                    format!("owner ({})", o.id),
                    "its chain of supervisors comes back to it".into(),
                );
                break;
            }
            next = owners
                .iter()
                .find(|x| x.id == s)
                .and_then(|x| x.supervisor.as_deref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn us() -> Calendar {
        Calendar {
            id: "US".into(),
            business_units: vec!["US001".into()],
            weekend: default_weekend(),
            holidays: [date("2026-12-25")].into(),
        }
    }

    #[test]
    fn due_dates_skip_weekends_and_holidays() {
        // Wednesday 2026-12-23 + 3 business days: Thu 24, (Fri 25 holiday, Sat, Sun) Mon 28,
        // Tue 29.
        assert_eq!(
            us().add_business_days(date("2026-12-23"), 3),
            date("2026-12-29")
        );
        // Friday + 1 = Monday.
        assert_eq!(
            us().add_business_days(date("2026-11-27"), 1),
            date("2026-11-30")
        );
        assert_eq!(
            us().add_business_days(date("2026-11-27"), 0),
            date("2026-11-27")
        );
        // 0 on a day nobody works: the next business day (Saturday 28 → Monday 30; the
        // Christmas holiday, Friday 25 → Monday 28).
        assert_eq!(
            us().add_business_days(date("2026-11-28"), 0),
            date("2026-11-30")
        );
        assert_eq!(
            us().add_business_days(date("2026-12-25"), 0),
            date("2026-12-28")
        );
    }

    #[test]
    fn negative_days_count_back_over_weekends() {
        // Monday 2026-11-30 − 1 business day = Friday 2026-11-27; − 2 = Thursday.
        assert_eq!(
            us().add_business_days(date("2026-11-30"), -1),
            date("2026-11-27")
        );
        assert_eq!(
            us().add_business_days(date("2026-11-30"), -2),
            date("2026-11-26")
        );
        // Monday 2026-12-28 − 1 skips the weekend and the Friday holiday.
        assert_eq!(
            us().add_business_days(date("2026-12-28"), -1),
            date("2026-12-24")
        );
    }

    #[test]
    fn a_directory_with_mistakes_is_refused_with_each_located() {
        let mut errors = Vec::new();
        let calendars = vec![
            us(),
            Calendar {
                id: "BAD".into(),
                business_units: vec!["US001".into()],
                weekend: vec!["FRIDAY".into()],
                holidays: BTreeSet::new(),
            },
        ];
        let owners = vec![
            Owner {
                id: "A".into(),
                name: String::new(),
                email: "a@example.com".into(),
                supervisor: Some("B".into()),
            },
            Owner {
                id: "B".into(),
                name: String::new(),
                email: "nobody".into(),
                supervisor: Some("A".into()),
            },
            Owner {
                id: "C".into(),
                name: String::new(),
                email: "c@example.com".into(),
                supervisor: Some("ZZ".into()),
            },
        ];
        problems(&calendars, &owners, &mut |at, message| {
            errors.push(format!("{at}: {message}"))
        });
        for expected in [
            "calendar[1] (BAD): business unit `US001` has another calendar already",
            "calendar[1] (BAD): `FRIDAY` is not a day name (MON, TUE, WED, THU, FRI, SAT, SUN)",
            "owner[1] (B): `nobody` is not an e-mail address",
            "owner[2] (C): supervisor `ZZ` is not an owner",
            "owner (A): its chain of supervisors comes back to it",
        ] {
            assert!(
                errors.iter().any(|e| e == expected),
                "{expected}\n{errors:#?}"
            );
        }
    }

    #[test]
    fn weekend_days_are_named_in_any_case_and_nothing_else_is_a_day() {
        assert_eq!(weekday("SAT"), Some(Weekday::Sat));
        assert_eq!(weekday("sun"), Some(Weekday::Sun));
        assert_eq!(weekday("Fri"), Some(Weekday::Fri));
        assert_eq!(weekday("Sunday"), None);
        assert_eq!(weekday(""), None);
        let calendar = Calendar {
            weekend: vec!["fri".into(), "SAT".into()],
            ..STANDARD_CALENDAR.clone()
        };
        let friday = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        assert!(!calendar.is_business_day(friday));
        assert!(
            calendar.is_business_day(friday + Duration::days(2)),
            "Sunday works here"
        );
    }
}
