//! OpenLDAP's password policy control (draft-behera-ldap-password-policy, the ppolicy
//! overlay): sent with a user's bind, it makes the server say why a bind was refused (password
//! expired, account locked) or what holds after it succeeded (the password must be changed,
//! grace logins, expiry soon). Servers without it ignore it (it is not critical).
use idflow_core::password_check::CheckResult;
use ldap3::asn1::{parse_tag, TagClass, PL};
use ldap3::controls::{Control, RawControl};

const OID: &str = "1.3.6.1.4.1.42.2.27.8.5.1";

/// The request: the control with no value.
pub(super) fn request() -> RawControl {
    RawControl { ctype: OID.into(), crit: false, val: None }
}

/// What the server answered in the response control.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Response {
    /// passwordExpired (0), accountLocked (1), changeAfterReset (2), ...
    pub error: Option<u64>,
    /// The password expired; this many more binds are allowed.
    pub grace: Option<u64>,
    /// The password expires in this many seconds.
    pub expires_in: Option<u64>,
}

/// A non-negative INTEGER's value (the last 8 bytes of a longer one: never, from a server).
fn unsigned(bytes: &[u8]) -> u64 {
    bytes.iter().skip(bytes.len().saturating_sub(8)).fold(0, |n, b| (n << 8) | u64::from(*b))
}

/// The response control among `ctrls`, when the server sent one that parses.
pub(super) fn response(ctrls: &[Control]) -> Option<Response> {
    let raw = ctrls.iter().find(|c| c.1.ctype == OID)?;
    parse(raw.1.val.as_deref()?)
}

/// `SEQUENCE { warning [0] CHOICE { timeBeforeExpiration [0] INTEGER, graceAuthNsRemaining
/// [1] INTEGER } OPTIONAL, error [1] ENUMERATED OPTIONAL }`
fn parse(value: &[u8]) -> Option<Response> {
    let (_, seq) = parse_tag(value).ok()?;
    let PL::C(items) = seq.payload else { return None };
    let mut r = Response::default();
    for item in items.into_iter().filter(|t| t.class == TagClass::Context) {
        match (item.id, item.payload) {
            (0, PL::C(warning)) => {
                for w in warning.into_iter().filter(|t| t.class == TagClass::Context) {
                    if let PL::P(b) = &w.payload {
                        match w.id {
                            0 => r.expires_in = Some(unsigned(b)),
                            1 => r.grace = Some(unsigned(b)),
                            _ => {}
                        }
                    }
                }
            }
            (1, PL::P(b)) => r.error = Some(unsigned(&b)),
            _ => {}
        }
    }
    Some(r)
}

impl Response {
    /// A bind's result as the policy says it: `bound` when the bind succeeded. A locked
    /// account reads locked with any password (as OpenLDAP answers it, and as AD does).
    pub(super) fn result(&self, bound: bool) -> Option<CheckResult> {
        match (bound, self.error) {
            (true, Some(2)) => Some(CheckResult::MustChangePassword),
            (false, Some(0)) => Some(CheckResult::PasswordExpired),
            (false, Some(1)) => Some(CheckResult::LockedOut),
            _ => None,
        }
    }

    /// What a successful bind is worth knowing (logged, never shown to the user).
    pub(super) fn detail(&self) -> Option<String> {
        match (self.grace, self.expires_in) {
            (Some(g), _) => Some(format!("the password has expired; {g} grace login(s) remain")),
            (None, Some(s)) => Some(format!("the password expires in {s} s")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, Response};
    use idflow_core::password_check::CheckResult;

    #[test]
    fn errors_and_warnings_are_read() {
        // error accountLocked
        let locked = parse(&[0x30, 0x03, 0x81, 0x01, 0x01]).expect("parses");
        assert_eq!(locked, Response { error: Some(1), ..Default::default() });
        assert_eq!(locked.result(false), Some(CheckResult::LockedOut));
        // warning graceAuthNsRemaining 2
        let grace = parse(&[0x30, 0x05, 0xa0, 0x03, 0x81, 0x01, 0x02]).expect("parses");
        assert_eq!(grace.grace, Some(2));
        assert_eq!(grace.result(true), None);
        // warning timeBeforeExpiration 86400, error changeAfterReset
        let both = parse(&[0x30, 0x0a, 0xa0, 0x05, 0x80, 0x03, 0x01, 0x51, 0x80, 0x81, 0x01, 0x02]).expect("parses");
        assert_eq!((both.expires_in, both.error), (Some(86400), Some(2)));
        assert_eq!(both.result(true), Some(CheckResult::MustChangePassword));
        assert_eq!(parse(&[0x30, 0x00]), Some(Response::default()));
        assert_eq!(parse(&[0x04]), None);
    }
}
