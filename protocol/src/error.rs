//! Discord's JSON error body, `{code, message, errors?}`, and the codes we send.
//!
//! Every failure the REST API returns is an [`ApiError`]: an HTTP status plus the body. Form
//! errors (code 50035) carry an `errors` tree mirroring the JSON path of the bad field, with leaves
//! `{"_errors": [{"code": "...", "message": "..."}]}`, exactly as Discord nests them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Discord's JSON error codes that this server emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    General = 0,
    UnknownAccount = 10001,
    UnknownApplication = 10002,
    UnknownChannel = 10003,
    UnknownGuild = 10004,
    UnknownInvite = 10006,
    UnknownMember = 10007,
    UnknownMessage = 10008,
    UnknownOverwrite = 10009,
    UnknownRole = 10011,
    UnknownToken = 10012,
    UnknownUser = 10013,
    UnknownEmoji = 10014,
    UnknownWebhook = 10015,
    UnknownBan = 10026,
    BotsCannotUse = 20001,
    OnlyBotsCanUse = 20002,
    MaxGuilds = 30001,
    MaxPins = 30003,
    MaxRecipients = 30004,
    MaxRoles = 30005,
    MaxReactions = 30010,
    MaxChannels = 30013,
    MaxWebhooks = 30007,
    MaxEmojis = 30008,
    MaxInvites = 30016,
    Unauthorized = 40001,
    RequestEntityTooLarge = 40005,
    Banned = 40007,
    AlreadyMember = 40063,
    MissingAccess = 50001,
    InvalidAccountType = 50002,
    CannotExecuteOnDm = 50003,
    CannotEditOthersMessage = 50005,
    EmptyMessage = 50006,
    CannotSendToUser = 50007,
    MissingPermissions = 50013,
    InvalidToken = 50014,
    BulkDeleteCount = 50016,
    InvalidPinChannel = 50019,
    InvalidInvite = 50020,
    MessageTooOldToBulkDelete = 50034,
    InvalidFormBody = 50035,
    InvalidTwoFactorCode = 60008,
    InvalidWebhookToken = 50027,
    InvalidJson = 50109,
    TwoFactorRequired = 60003,
    InvalidTwoFactorTicket = 60006,
    ReplyWithoutHistory = 160002,
}

impl ErrorCode {
    pub fn as_u32(self) -> u32 {
        self as u32
    }
}

/// The error body Discord returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct ErrorBody {
    pub code: u32,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[cfg_attr(
        feature = "arbitrary",
        proptest(strategy = "proptest::option::of(crate::arbitrary::json_object())")
    )]
    pub errors: Option<Value>,
}

/// An API failure: HTTP status and Discord error body. It serializes so that a guild on another
/// node can answer with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{status} {}: {}", body.code, body.message)]
#[cfg_attr(feature = "arbitrary", derive(proptest_derive::Arbitrary))]
pub struct ApiError {
    pub status: u16,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: u16, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                code: code.as_u32(),
                message: message.into(),
                errors: None,
            },
        }
    }

    pub fn code(&self) -> u32 {
        self.body.code
    }

    pub fn unknown(code: ErrorCode) -> Self {
        let message = match code {
            ErrorCode::UnknownAccount => "Unknown Account",
            ErrorCode::UnknownApplication => "Unknown Application",
            ErrorCode::UnknownChannel => "Unknown Channel",
            ErrorCode::UnknownGuild => "Unknown Guild",
            ErrorCode::UnknownInvite => "Unknown Invite",
            ErrorCode::UnknownMember => "Unknown Member",
            ErrorCode::UnknownMessage => "Unknown Message",
            ErrorCode::UnknownOverwrite => "Unknown Overwrite",
            ErrorCode::UnknownRole => "Unknown Role",
            ErrorCode::UnknownUser => "Unknown User",
            ErrorCode::UnknownEmoji => "Unknown Emoji",
            ErrorCode::UnknownBan => "Unknown Ban",
            ErrorCode::UnknownWebhook => "Unknown Webhook",
            _ => "Unknown",
        };
        ApiError::new(404, code, message)
    }

    pub fn unauthorized() -> Self {
        ApiError::new(401, ErrorCode::Unauthorized, "401: Unauthorized")
    }

    pub fn missing_access() -> Self {
        ApiError::new(403, ErrorCode::MissingAccess, "Missing Access")
    }

    /// 50003: what only a guild channel supports was asked of a DM.
    pub fn dm_channel() -> Self {
        ApiError::new(
            403,
            ErrorCode::CannotExecuteOnDm,
            "Cannot execute action on a DM channel",
        )
    }

    /// 50007: the recipient blocked the sender (or the sender them), or they share no guild.
    pub fn cannot_send_to_user() -> Self {
        ApiError::new(
            403,
            ErrorCode::CannotSendToUser,
            "Cannot send messages to this user",
        )
    }

    pub fn missing_permissions() -> Self {
        ApiError::new(403, ErrorCode::MissingPermissions, "Missing Permissions")
    }

    pub fn invalid_json() -> Self {
        ApiError::new(
            400,
            ErrorCode::InvalidJson,
            "The request body contains invalid JSON.",
        )
    }

    pub fn internal() -> Self {
        ApiError::new(500, ErrorCode::General, "500: Internal Server Error")
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(503, ErrorCode::General, message)
    }

    /// A single form error at `path` (e.g. `["content"]` or `["roles", "0"]`).
    pub fn form(path: &[&str], code: &str, message: impl Into<String>) -> Self {
        let mut e = FormErrors::default();
        e.add(path, code, message);
        e.into_error()
    }
}

/// Builder for a 50035 "Invalid Form Body" error with per-field entries.
#[derive(Debug, Default)]
pub struct FormErrors {
    tree: Map<String, Value>,
}

impl FormErrors {
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Records an error at a JSON path; array indices are given as their decimal string.
    pub fn add(&mut self, path: &[&str], code: &str, message: impl Into<String>) {
        let mut node = &mut self.tree;
        for segment in path {
            let entry = node
                .entry((*segment).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            node = match entry {
                Value::Object(m) => m,
                _ => unreachable!("entry was just made an object"),
            };
        }
        let errors = node
            .entry("_errors")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = errors {
            list.push(serde_json::json!({"code": code, "message": message.into()}));
        }
    }

    /// `Ok(())` when nothing was recorded, else the 50035 error.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.into_error())
        }
    }

    pub fn into_error(self) -> ApiError {
        ApiError {
            status: 400,
            body: ErrorBody {
                code: ErrorCode::InvalidFormBody.as_u32(),
                message: "Invalid Form Body".to_owned(),
                errors: Some(Value::Object(self.tree)),
            },
        }
    }

    /// Checks a string's length in characters (Discord counts code points, not bytes).
    pub fn check_len(&mut self, path: &[&str], value: &str, min: usize, max: usize) {
        let n = value.chars().count();
        if n < min || n > max {
            self.add(
                path,
                "BASE_TYPE_BAD_LENGTH",
                format!("Must be between {min} and {max} in length."),
            );
        }
    }

    /// Checks an integer range.
    pub fn check_range(&mut self, path: &[&str], value: i64, min: i64, max: i64) {
        if value < min {
            self.add(
                path,
                "NUMBER_TYPE_MIN",
                format!("int value should be greater than or equal to {min}."),
            );
        } else if value > max {
            self.add(
                path,
                "NUMBER_TYPE_MAX",
                format!("int value should be less than or equal to {max}."),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_errors_nest_like_discord() {
        let mut e = FormErrors::default();
        e.add(&["activities", "0", "platform"], "BASE_TYPE_CHOICES", "bad");
        e.add(&["content"], "BASE_TYPE_MAX_LENGTH", "too long");
        e.add(&["content"], "OTHER", "second");
        let err = e.into_error();
        assert_eq!(err.status, 400);
        let json = serde_json::to_value(&err.body).unwrap();
        assert_eq!(json["code"], 50035);
        assert_eq!(json["message"], "Invalid Form Body");
        assert_eq!(
            json["errors"]["activities"]["0"]["platform"]["_errors"][0]["code"],
            "BASE_TYPE_CHOICES"
        );
        assert_eq!(
            json["errors"]["content"]["_errors"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn empty_form_errors_pass_and_simple_errors_omit_errors_field() {
        assert!(FormErrors::default().finish().is_ok());
        let json = serde_json::to_value(ApiError::unknown(ErrorCode::UnknownChannel).body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code": 10003, "message": "Unknown Channel"})
        );
    }

    #[test]
    fn length_and_range_checks_count_characters() {
        let mut e = FormErrors::default();
        e.check_len(&["name"], "ééé", 1, 3);
        e.check_range(&["limit"], 50, 1, 100);
        assert!(e.is_empty());
        e.check_len(&["name"], "éééé", 1, 3);
        e.check_range(&["limit"], 0, 1, 100);
        e.check_range(&["max"], 101, 1, 100);
        let body = serde_json::to_value(e.into_error().body).unwrap();
        assert_eq!(
            body["errors"]["name"]["_errors"][0]["code"],
            "BASE_TYPE_BAD_LENGTH"
        );
        assert_eq!(
            body["errors"]["limit"]["_errors"][0]["code"],
            "NUMBER_TYPE_MIN"
        );
        assert_eq!(
            body["errors"]["max"]["_errors"][0]["code"],
            "NUMBER_TYPE_MAX"
        );
    }
}
