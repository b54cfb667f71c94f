//! A generic `a=` attribute: a name and an optional value, kept whatever the name.

use std::fmt;

/// `a=<name>` or `a=<name>:<value>`. Unknown attributes are kept as they came so they
/// survive a parse and serialize.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// The name, before the first colon.
    pub name: String,
    /// The value after the first colon, if any.
    pub value: Option<String>,
}

impl Attribute {
    /// A property attribute (no value), e.g. `rtcp-mux`.
    pub fn flag(name: &str) -> Self {
        Attribute {
            name: name.to_owned(),
            value: None,
        }
    }

    /// A value attribute, e.g. `ptime:20`.
    pub fn new(name: &str, value: impl fmt::Display) -> Self {
        Attribute {
            name: name.to_owned(),
            value: Some(value.to_string()),
        }
    }

    /// Splits the text after `a=`.
    pub fn parse(text: &str) -> Self {
        match text.split_once(':') {
            Some((name, value)) => Attribute {
                name: name.trim().to_owned(),
                value: Some(value.trim().to_owned()),
            },
            None => Attribute::flag(text.trim()),
        }
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}:{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_first_colon() {
        let a = Attribute::parse("crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc|2^20");
        assert_eq!(a.name, "crypto");
        assert_eq!(
            a.value.as_deref(),
            Some("1 AES_CM_128_HMAC_SHA1_80 inline:abc|2^20")
        );
        let a = Attribute::parse("rtcp-mux");
        assert_eq!((a.name.as_str(), a.value), ("rtcp-mux", None));
        assert_eq!(Attribute::new("ptime", 20).to_string(), "ptime:20");
    }
}
