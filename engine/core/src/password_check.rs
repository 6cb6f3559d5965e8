//! Pass-through authentication's check: is this the user's password, by the directory itself
//! (an LDAP bind), and if the directory refused, why, in the words a front end can act on.
//! Only the right password ever reveals an account's state, as Active Directory does.
use serde::{Deserialize, Serialize};

/// What the directory said of a user and a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckResult {
    Success,
    /// Wrong password, or no such user (never told apart: 52e and 525 read the same).
    InvalidCredentials,
    /// 533: the account is disabled (only with the right password).
    AccountDisabled,
    /// 701: the account has expired.
    AccountExpired,
    /// 532: the password has expired (a front end may offer a password change).
    PasswordExpired,
    /// 773: the user must change the password before signing in.
    MustChangePassword,
    /// 530: not at this time of day.
    LogonHours,
    /// 531: not from this workstation.
    Workstation,
    /// 775: the account is locked out in the directory.
    LockedOut,
    /// No directory answered in time: nothing is known of the password.
    Unreachable,
}

impl CheckResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckResult::Success => "success",
            CheckResult::InvalidCredentials => "invalid_credentials",
            CheckResult::AccountDisabled => "account_disabled",
            CheckResult::AccountExpired => "account_expired",
            CheckResult::PasswordExpired => "password_expired",
            CheckResult::MustChangePassword => "must_change_password",
            CheckResult::LogonHours => "logon_hours",
            CheckResult::Workstation => "workstation",
            CheckResult::LockedOut => "locked_out",
            CheckResult::Unreachable => "unreachable",
        }
    }

    /// Active Directory's bind sub-code (the `data XXX` of its diagnostic message) as a result.
    pub fn from_ad_code(code: &str) -> CheckResult {
        match code.to_ascii_lowercase().as_str() {
            "530" => CheckResult::LogonHours,
            "531" => CheckResult::Workstation,
            "532" => CheckResult::PasswordExpired,
            "533" => CheckResult::AccountDisabled,
            "701" => CheckResult::AccountExpired,
            "773" => CheckResult::MustChangePassword,
            "775" => CheckResult::LockedOut,
            // 52e (wrong password), 525 (no such user), and whatever else: refused, no more said.
            _ => CheckResult::InvalidCredentials,
        }
    }
}

/// The answer of one check: the result, which directory gave it, and for the log what it said
/// (never the password; for an unknown user nothing that tells it apart from a wrong password).
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub result: CheckResult,
    pub server: Option<String>,
    pub detail: Option<String>,
}

/// Checks passwords against a directory.
pub trait PasswordCheck: Send + Sync {
    /// Blocks until the directory answered (or every server timed out).
    fn check(&self, user: &str, password: &str) -> Checked;
    /// The domain's account lockout: its threshold (0: none) and observation window, when the
    /// directory says (Active Directory's domain object).
    fn lockout_policy(&self) -> Option<(u32, std::time::Duration)> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::CheckResult;

    #[test]
    fn ad_sub_codes_map_and_unknown_users_read_as_wrong_passwords() {
        assert_eq!(CheckResult::from_ad_code("52e"), CheckResult::InvalidCredentials);
        assert_eq!(CheckResult::from_ad_code("525"), CheckResult::InvalidCredentials);
        assert_eq!(CheckResult::from_ad_code("533"), CheckResult::AccountDisabled);
        assert_eq!(CheckResult::from_ad_code("773"), CheckResult::MustChangePassword);
        assert_eq!(CheckResult::from_ad_code("775"), CheckResult::LockedOut);
        assert_eq!(CheckResult::from_ad_code("701"), CheckResult::AccountExpired);
        assert_eq!(CheckResult::from_ad_code("530"), CheckResult::LogonHours);
        assert_eq!(CheckResult::from_ad_code("zzz"), CheckResult::InvalidCredentials);
    }
}
