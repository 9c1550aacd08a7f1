//! Reading typed fields out of one JSON event object while collecting a [`FieldError`] per
//! problem: shared by the native and the Segment formats, which each add their own readers.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::FieldError;

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

    /// Ok when `errors` is empty.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }
}
