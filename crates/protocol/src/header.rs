//! Header names and the protocol GUID.
//!
//! Names are lower-case because HTTP header names are case-insensitive and `http` stores them
//! that way; on the wire hyper writes them as given here.

use http::HeaderName;

/// `BITS-Packet-Type`: the packet of a request, or `Ack` on every response.
pub const PACKET_TYPE: HeaderName = HeaderName::from_static("bits-packet-type");
/// `BITS-Supported-Protocols`: the client's protocol GUIDs, in order of preference.
pub const SUPPORTED_PROTOCOLS: HeaderName = HeaderName::from_static("bits-supported-protocols");
/// `BITS-Protocol`: the GUID the server chose (Create-Session Ack only).
pub const PROTOCOL: HeaderName = HeaderName::from_static("bits-protocol");
/// `BITS-Session-Id`.
pub const SESSION_ID: HeaderName = HeaderName::from_static("bits-session-id");
/// `BITS-Host-Id`: the node-specific address the client uses after Create-Session.
pub const HOST_ID: HeaderName = HeaderName::from_static("bits-host-id");
/// `BITS-Host-Id-Fallback-Timeout`: seconds the client keeps trying the Host-Id.
pub const HOST_ID_FALLBACK_TIMEOUT: HeaderName =
    HeaderName::from_static("bits-host-id-fallback-timeout");
/// `BITS-Received-Content-Range`: one past the last byte the server holds.
pub const RECEIVED_CONTENT_RANGE: HeaderName =
    HeaderName::from_static("bits-received-content-range");
/// `BITS-Reply-URL`: where an upload-reply job downloads its reply (final Fragment Ack only).
pub const REPLY_URL: HeaderName = HeaderName::from_static("bits-reply-url");
/// `BITS-Error-Code`: the HRESULT of an error Ack (the name MSDN and all servers use).
pub const ERROR_CODE: HeaderName = HeaderName::from_static("bits-error-code");
/// `BITS-Error`: MC-BUP's name for the HRESULT header; accepted on input only.
pub const ERROR_CODE_MC_BUP: HeaderName = HeaderName::from_static("bits-error");
/// `BITS-Error-Context`: where the error happened (see [`crate::ErrorContext`]).
pub const ERROR_CONTEXT: HeaderName = HeaderName::from_static("bits-error-context");
/// `Content-Name`: the client's local file name, first Fragment only.
pub const CONTENT_NAME: HeaderName = HeaderName::from_static("content-name");
/// `X-Http-Method-Override`: the OneDrive dialect sends `POST` with this set to `BITS_POST`.
pub const METHOD_OVERRIDE: HeaderName = HeaderName::from_static("x-http-method-override");

/// `BITS-Original-Request-URL`: the job's remote name, on every notification.
pub const ORIGINAL_REQUEST_URL: HeaderName = HeaderName::from_static("bits-original-request-url");
/// `BITS-Request-DataFile-Name`: path of the uploaded entity (notification by reference).
pub const REQUEST_DATAFILE_NAME: HeaderName = HeaderName::from_static("bits-request-datafile-name");
/// `BITS-Response-DataFile-Name`: path where the application writes its reply (by reference).
pub const RESPONSE_DATAFILE_NAME: HeaderName =
    HeaderName::from_static("bits-response-datafile-name");
/// `BITS-Static-Response-URL`: the application's reply is this URL, passed through verbatim.
pub const STATIC_RESPONSE_URL: HeaderName = HeaderName::from_static("bits-static-response-url");
/// `BITS-Copy-File-To-Destination`: the application asks BITS to also place the upload at the
/// job's remote name.
pub const COPY_FILE_TO_DESTINATION: HeaderName =
    HeaderName::from_static("bits-copy-file-to-destination");

/// `X-Bitsfarm-Node`: a harness extension on notifications naming the node that sends it.
/// Real applications ignore it; bitsfarm's backend records it in its ledger.
pub const X_NODE: HeaderName = HeaderName::from_static("x-bitsfarm-node");
/// `X-Bitsfarm-Session-Id`: a harness extension on notifications carrying the BITS session id
/// (by-value notifications otherwise carry none).
pub const X_SESSION_ID: HeaderName = HeaderName::from_static("x-bitsfarm-session-id");
/// Harness extension on notifications: the secret shared by the nodes and the application, so
/// the application refuses notifications that do not come from a node.
pub const X_APP_TOKEN: HeaderName = HeaderName::from_static("x-bitsfarm-app-token");

/// The only protocol GUID defined: "BITS 1.5 Upload Protocol".
pub const PROTOCOL_GUID: &str = "{7df0354d-249b-430f-820d-3d2a9bef4931}";

/// Header values should stay under 4 KB (MC-BUP 2.2); longer values are rejected on input.
pub const MAX_HEADER_VALUE_LEN: usize = 4096;

/// Whether `token` names [`PROTOCOL_GUID`], compared case-insensitively.
pub fn is_upload_protocol(token: &str) -> bool {
    token.eq_ignore_ascii_case(PROTOCOL_GUID)
}
