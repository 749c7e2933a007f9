//! The kinds of personal data the guard knows, with Presidio's names where
//! Presidio has one.

use std::fmt;

/// A kind of personal or secret data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    EmailAddress,
    PhoneNumber,
    CreditCard,
    IbanCode,
    UsSsn,
    IpAddress,
    MacAddress,
    /// A URL carrying credentials (`scheme://user:password@host`).
    Url,
    AwsAccessKey,
    GithubToken,
    SlackToken,
    Jwt,
    PrivateKey,
    /// A high-entropy token next to "key", "token", "password", ...
    Secret,
    DateOfBirth,
}

impl Entity {
    /// Every entity, in a fixed order.
    pub const ALL: [Entity; 15] = [
        Entity::EmailAddress,
        Entity::PhoneNumber,
        Entity::CreditCard,
        Entity::IbanCode,
        Entity::UsSsn,
        Entity::IpAddress,
        Entity::MacAddress,
        Entity::Url,
        Entity::AwsAccessKey,
        Entity::GithubToken,
        Entity::SlackToken,
        Entity::Jwt,
        Entity::PrivateKey,
        Entity::Secret,
        Entity::DateOfBirth,
    ];

    /// The upper-case name (Presidio's, where it has one).
    pub fn name(self) -> &'static str {
        match self {
            Entity::EmailAddress => "EMAIL_ADDRESS",
            Entity::PhoneNumber => "PHONE_NUMBER",
            Entity::CreditCard => "CREDIT_CARD",
            Entity::IbanCode => "IBAN_CODE",
            Entity::UsSsn => "US_SSN",
            Entity::IpAddress => "IP_ADDRESS",
            Entity::MacAddress => "MAC_ADDRESS",
            Entity::Url => "URL",
            Entity::AwsAccessKey => "AWS_ACCESS_KEY",
            Entity::GithubToken => "GITHUB_TOKEN",
            Entity::SlackToken => "SLACK_TOKEN",
            Entity::Jwt => "JWT",
            Entity::PrivateKey => "PRIVATE_KEY",
            Entity::Secret => "SECRET",
            Entity::DateOfBirth => "DATE_OF_BIRTH",
        }
    }

    /// Parses a name as [`Entity::name`] writes it.
    pub fn from_name(name: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
