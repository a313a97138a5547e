//! Janus's request validation, as the VideoRoom plugin does it (`JANUS_VALIDATE_JSON_OBJECT`
//! in Janus's `utils.h`): each request has a table of parameters with a type and flags,
//! checked in table order; the first missing required one gives 429 "Missing mandatory
//! element (x)", the first of a wrong type 430 "Invalid element type (x should be a …)".
//! Pure functions over `serde_json::Value`, so the proxy refuses exactly what Janus refuses,
//! with the same words.

use serde_json::{Map, Value};

use super::error::{VrError, INVALID_ELEMENT, MISSING_ELEMENT, UNAUTHORIZED};

/// JSON types a parameter may have (`JANUS_JSON_BOOL` accepts true and false).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    Int,
    Bool,
    Array,
}

/// A parameter: name, type, required, positive (Janus: integers `>= 0`).
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    pub positive: bool,
}

pub const fn opt(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        required: false,
        positive: false,
    }
}

pub const fn pos(name: &'static str) -> Param {
    Param {
        name,
        ty: Ty::Int,
        required: false,
        positive: true,
    }
}

pub const fn req(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        required: true,
        positive: false,
    }
}

pub const fn req_pos(name: &'static str) -> Param {
    Param {
        name,
        ty: Ty::Int,
        required: true,
        positive: true,
    }
}

/// Janus's `janus_get_json_type_name`: "a string", "an integer", "a positive integer", ...
fn type_name(p: &Param) -> String {
    let noun = match p.ty {
        Ty::Str => "string",
        Ty::Int => "integer",
        Ty::Bool => "boolean",
        Ty::Array => "array",
    };
    let article = if p.positive {
        "a positive"
    } else if matches!(p.ty, Ty::Int | Ty::Array) {
        "an"
    } else {
        "a"
    };
    format!("{article} {noun}")
}

fn is_valid(v: &Value, p: &Param) -> bool {
    match p.ty {
        Ty::Str => v.is_string(),
        // Janus (jansson) integers: no fraction, no exponent; `positive` means >= 0.
        Ty::Int => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                !p.positive || n.as_i64().is_none_or(|i| i >= 0)
            }
            _ => false,
        },
        Ty::Bool => v.is_boolean(),
        Ty::Array => v.is_array(),
    }
}

/// Checks `body` against `params`, in order, as Janus does.
///
/// # Errors
/// 429 for the first missing required parameter, 430 for the first of a wrong type.
pub fn check(body: &Map<String, Value>, params: &[Param]) -> Result<(), VrError> {
    for p in params {
        match body.get(p.name) {
            None if p.required => {
                return Err(VrError::new(
                    MISSING_ELEMENT,
                    format!("Missing mandatory element ({})", p.name),
                ))
            }
            None => {}
            Some(v) if !is_valid(v, p) => {
                return Err(VrError::new(
                    INVALID_ELEMENT,
                    format!(
                        "Invalid element type ({} should be {})",
                        p.name,
                        type_name(p)
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// `JANUS_CHECK_SECRET`: when the room has a secret (or pin), the request must carry it.
///
/// # Errors
/// 429/430 when the field is missing or not a string, 433 "Unauthorized (wrong x)".
pub fn check_secret(
    body: &Map<String, Value>,
    member: &'static str,
    expected: &str,
) -> Result<(), VrError> {
    if expected.is_empty() {
        return Ok(());
    }
    check(body, &[req(member, Ty::Str)])?;
    let given = body.get(member).and_then(Value::as_str).unwrap_or_default();
    if !crate::api::secret::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(VrError::new(
            UNAUTHORIZED,
            format!("Unauthorized (wrong {member})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn messages_match_janus() {
        let params = [
            req_pos("room"),
            opt("description", Ty::Str),
            opt("is_private", Ty::Bool),
        ];
        let e = check(&obj(json!({})), &params).unwrap_err();
        assert_eq!(
            (e.code, e.text.as_str()),
            (429, "Missing mandatory element (room)")
        );
        let e = check(&obj(json!({"room": "x"})), &params).unwrap_err();
        assert_eq!(
            (e.code, e.text.as_str()),
            (
                430,
                "Invalid element type (room should be a positive integer)"
            )
        );
        let e = check(&obj(json!({"room": -1})), &params).unwrap_err();
        assert_eq!(e.code, 430);
        let e = check(&obj(json!({"room": 1.5})), &params).unwrap_err();
        assert_eq!(e.code, 430);
        let e = check(&obj(json!({"room": 1, "is_private": 1})), &params).unwrap_err();
        assert_eq!(
            e.text,
            "Invalid element type (is_private should be a boolean)"
        );
        let e = check(&obj(json!({"room": 1, "description": 3})), &params).unwrap_err();
        assert_eq!(
            e.text,
            "Invalid element type (description should be a string)"
        );
        check(&obj(json!({"room": 0, "description": "d"})), &params).unwrap();
        let e = check(&obj(json!({"allowed": 1})), &[opt("allowed", Ty::Array)]).unwrap_err();
        assert_eq!(e.text, "Invalid element type (allowed should be an array)");
        let e = check(&obj(json!({"n": 1.0})), &[opt("n", Ty::Int)]).unwrap_err();
        assert_eq!(e.text, "Invalid element type (n should be an integer)");
    }

    #[test]
    fn secrets() {
        check_secret(&obj(json!({})), "secret", "").unwrap();
        let e = check_secret(&obj(json!({})), "secret", "s").unwrap_err();
        assert_eq!(
            (e.code, e.text.as_str()),
            (429, "Missing mandatory element (secret)")
        );
        let e = check_secret(&obj(json!({"pin": "x"})), "pin", "y").unwrap_err();
        assert_eq!((e.code, e.text.as_str()), (433, "Unauthorized (wrong pin)"));
        check_secret(&obj(json!({"pin": "y"})), "pin", "y").unwrap();
    }
}
