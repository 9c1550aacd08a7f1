//! Reading typed fields out of one JSON event object while collecting a [`FieldError`] per
//! problem: shared by the native and the Segment formats, which each add their own readers.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::limits::check_id;
use crate::FieldError;

/// Which JSON types an id may come as.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdType {
    /// Strings only (the native API).
    String,
    /// Strings or numbers, stringified (Segment libraries send numeric ids).
    StringOrNumber,
}

pub(crate) struct Reader<'a> {
    pub obj: &'a Map<String, Value>,
    pub errors: Vec<FieldError>,
}

impl<'a> Reader<'a> {
    pub fn new(obj: &'a Map<String, Value>) -> Self {
        Self { obj, errors: Vec::new() }
    }

    pub fn fail(&mut self, field: &str, reason: &str) {
        self.errors.push(FieldError::new(field, reason));
    }

    /// Present and not null.
    pub fn has(&self, field: &str) -> bool {
        self.obj.get(field).is_some_and(|v| !v.is_null())
    }

    pub fn object(&mut self, field: &str) -> Option<Map<String, Value>> {
        match self.obj.get(field)? {
            Value::Object(m) => Some(m.clone()),
            Value::Null => None,
            _ => {
                self.fail(field, "must be a JSON object");
                None
            }
        }
    }

    pub fn timestamp(&mut self, field: &str) -> Option<DateTime<Utc>> {
        match self.obj.get(field)? {
            Value::String(s) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(e) => {
                    self.fail(field, &format!("must be an RFC 3339 date-time ({e})"));
                    None
                }
            },
            Value::Null => None,
            _ => {
                self.fail(field, "must be an RFC 3339 date-time string");
                None
            }
        }
    }

    /// Reads the id at `path` (a dotted name for the error, e.g. `context.groupId`) from `value`
    /// under the one id rule ([`check_id`]). `None` and a failure recorded when it breaks the
    /// rule; `None` without one when it is absent (or null) and not `required`.
    pub fn id_at(&mut self, path: &str, value: Option<&Value>, required: bool, types: IdType) -> Option<String> {
        let id = match value {
            None | Some(Value::Null) => {
                if required {
                    let what = if types == IdType::String { "is required" } else { "is required (a string or number)" };
                    self.fail(path, what);
                }
                return None;
            }
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if types == IdType::StringOrNumber => n.to_string(),
            Some(_) => {
                let what =
                    if types == IdType::String { "must be a string" } else { "must be a non-empty string or a number" };
                self.fail(path, what);
                return None;
            }
        };
        match check_id(&id) {
            Ok(()) => Some(id),
            Err(reason) => {
                self.fail(path, &reason);
                None
            }
        }
    }

    /// A count (`records`, `bytes`, feature uses) read from `value` at `path`: an integer from
    /// `min` to the documented cap (`limits::MAX_VOLUME`, `limits::MAX_USES`), so ClickHouse sums cannot wrap.
    pub fn count_at(&mut self, path: &str, value: Option<&Value>, min: u64, max: u64) -> Option<u64> {
        let value = value.filter(|v| !v.is_null())?;
        match value.as_u64() {
            Some(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                self.fail(path, &format!("must be an integer from {min} to {max}"));
                None
            }
        }
    }

    /// Ok when `errors` is empty.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }
}
