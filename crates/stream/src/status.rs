//! What the error channel of an exec/attach carries at the end: from v4 on, a
//! `metav1.Status` in JSON (success, or failure with the exit code as a cause, which
//! client-go turns into the command's exit code); before v4, the failure's text and nothing
//! on success. Shapes and messages follow the kubelet's streaming library.

use serde::Serialize;

/// How a finished session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The command exited with a non-zero code; `command` is its argv.
    NonZeroExit {
        command: Vec<String>,
        code: i32,
    },
    /// The session could not run (container gone, exec refused, ...).
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFormat {
    /// v4 and later: `metav1.Status` JSON.
    Json,
    /// channel.k8s.io, v2, v3: the error text, nothing on success.
    Text,
}

#[derive(Serialize)]
struct Status {
    /// Go's encoder always writes the (empty) ListMeta struct.
    metadata: Empty,
    status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct Details {
    causes: Vec<Cause>,
}

#[derive(Serialize)]
struct Cause {
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'static str,
    message: String,
}

impl Outcome {
    /// The failure's human message (what v1-v3 clients print).
    fn message(&self) -> String {
        match self {
            Outcome::Success => String::new(),
            Outcome::NonZeroExit { command, code } => format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                command.join(" ")
            ),
            Outcome::Failed(msg) => format!("Internal error occurred: {msg}"),
        }
    }

    /// The bytes to write to the error channel (may be empty: nothing to write).
    pub fn encode(&self, format: StatusFormat) -> Vec<u8> {
        if format == StatusFormat::Text {
            return self.message().into_bytes();
        }
        let status = match self {
            Outcome::Success => Status {
                metadata: Empty {},
                status: "Success",
                message: String::new(),
                reason: "",
                details: None,
                code: None,
            },
            Outcome::NonZeroExit { code, .. } => Status {
                metadata: Empty {},
                status: "Failure",
                message: self.message(),
                reason: "NonZeroExitCode",
                details: Some(Details {
                    causes: vec![Cause {
                        reason: "ExitCode",
                        message: code.to_string(),
                    }],
                }),
                code: None,
            },
            Outcome::Failed(msg) => Status {
                metadata: Empty {},
                status: "Failure",
                message: self.message(),
                reason: "InternalError",
                details: Some(Details {
                    causes: vec![Cause {
                        reason: "",
                        message: msg.clone(),
                    }],
                }),
                code: Some(500),
            },
        };
        // Serializing plain structs of strings and numbers cannot fail.
        serde_json::to_vec(&status).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_statuses_match_the_kubelet() {
        assert_eq!(
            String::from_utf8(Outcome::Success.encode(StatusFormat::Json)).expect("utf8"),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let exit = Outcome::NonZeroExit {
            command: vec!["sh".into(), "-c".into(), "exit 3".into()],
            code: 3,
        };
        assert_eq!(
            String::from_utf8(exit.encode(StatusFormat::Json)).expect("utf8"),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        let failed = Outcome::Failed("container c1 not found".into());
        let v: serde_json::Value =
            serde_json::from_slice(&failed.encode(StatusFormat::Json)).expect("json");
        assert_eq!(v["status"], "Failure");
        assert_eq!(
            v["message"],
            "Internal error occurred: container c1 not found"
        );
        assert_eq!(v["code"], 500);
    }

    #[test]
    fn text_statuses_are_empty_on_success() {
        assert!(Outcome::Success.encode(StatusFormat::Text).is_empty());
        let failed = Outcome::Failed("boom".into());
        assert_eq!(
            failed.encode(StatusFormat::Text),
            b"Internal error occurred: boom".to_vec()
        );
    }
}
