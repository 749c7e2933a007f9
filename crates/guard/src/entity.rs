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
    /// UK National Insurance number.
    UkNino,
    /// UK NHS number (mod-11 check digit).
    UkNhs,
    /// Spanish DNI/NIF (check letter).
    EsNif,
    /// Spanish foreigner's number (check letter).
    EsNie,
    /// Italian codice fiscale (check letter).
    ItFiscalCode,
    /// French social security number, NIR or "numéro INSEE" (mod-97 key).
    FrNir,
    /// German tax identification number, Steuer-ID (ISO 7064 check digit).
    DeTaxId,
    /// Indian Aadhaar number (Verhoeff check digit).
    InAadhaar,
    /// Polish PESEL (weighted check digit, birth date inside).
    PlPesel,
    /// Brazilian CPF (two mod-11 check digits).
    BrCpf,
}

impl Entity {
    /// Every entity, in a fixed order.
    pub const ALL: [Entity; 25] = [
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
        Entity::UkNino,
        Entity::UkNhs,
        Entity::EsNif,
        Entity::EsNie,
        Entity::ItFiscalCode,
        Entity::FrNir,
        Entity::DeTaxId,
        Entity::InAadhaar,
        Entity::PlPesel,
        Entity::BrCpf,
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
            Entity::UkNino => "UK_NINO",
            Entity::UkNhs => "UK_NHS",
            Entity::EsNif => "ES_NIF",
            Entity::EsNie => "ES_NIE",
            Entity::ItFiscalCode => "IT_FISCAL_CODE",
            Entity::FrNir => "FR_NIR",
            Entity::DeTaxId => "DE_TAX_ID",
            Entity::InAadhaar => "IN_AADHAAR",
            Entity::PlPesel => "PL_PESEL",
            Entity::BrCpf => "BR_CPF",
        }
    }

    /// A national identity number (the words that announce any of them,
    /// "social security number", count as their context).
    pub fn is_national_id(self) -> bool {
        matches!(
            self,
            Entity::UkNino
                | Entity::UkNhs
                | Entity::EsNif
                | Entity::EsNie
                | Entity::ItFiscalCode
                | Entity::FrNir
                | Entity::DeTaxId
                | Entity::InAadhaar
                | Entity::PlPesel
                | Entity::BrCpf
        )
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
