//! [`validated_string!`](crate::validated_string): strings that can only exist in a checked
//! form (a ticket reference, a node's address or name). The checking differs from type to type;
//! the rest — parsing, `Display`, `as_str`, and serde that refuses what the check refuses, so
//! no unchecked value gets in off the wire or out of a config file — is written once here.

/// The serde the macro's expansion names, so that crates using the macro need not name it.
#[doc(hidden)]
pub use serde;

/// Declares `$name`, a `String` newtype whose every value passed `$valid`, and its
/// constructors: `TryFrom<String>`, `FromStr` and `Deserialize` (a string) all check and fail
/// with the unit error `$error`; `Serialize` writes the plain string, so the wire form is the
/// string itself. Also `as_str`, `Display` (the string), `Debug` (`Name("…")`),
/// `From<$name> for String`, and `Clone`, `Eq`, `Ord`, `Hash`.
///
/// ```
/// #[derive(Debug, thiserror::Error)]
/// #[error("a shout is 1 to 8 capital letters")]
/// pub struct BadShout;
///
/// ponte_wire::validated_string! {
///     /// 1 to 8 capital letters.
///     pub struct Shout;
///     error: BadShout,
///     valid: |s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase()),
/// }
///
/// assert_eq!("HEY".parse::<Shout>().unwrap().as_str(), "HEY");
/// assert!("hey".parse::<Shout>().is_err());
/// ```
#[macro_export]
macro_rules! validated_string {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident;
        error: $error:ident,
        valid: $valid:expr $(,)?
    ) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis struct $name(String);

        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::core::convert::TryFrom<String> for $name {
            type Error = $error;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                let valid: fn(&str) -> bool = $valid;
                if valid(&s) { Ok($name(s)) } else { Err($error) }
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = $error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$name as ::core::convert::TryFrom<String>>::try_from(s.to_owned())
            }
        }

        impl ::core::convert::From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), self.0)
            }
        }

        impl $crate::validated::serde::Serialize for $name {
            fn serialize<S>(&self, serializer: S) -> Result<S::Ok, S::Error>
            where
                S: $crate::validated::serde::Serializer,
            {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> $crate::validated::serde::Deserialize<'de> for $name {
            fn deserialize<D>(deserializer: D) -> Result<Self, D::Error>
            where
                D: $crate::validated::serde::Deserializer<'de>,
            {
                let s = <String as $crate::validated::serde::Deserialize>::deserialize(deserializer)?;
                <$name as ::core::convert::TryFrom<String>>::try_from(s)
                    .map_err(<D::Error as $crate::validated::serde::de::Error>::custom)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[derive(Debug, PartialEq, Eq, thiserror::Error)]
    #[error("two lower-case letters")]
    struct BadPair;

    crate::validated_string! {
        /// Two lower-case letters.
        struct Pair;
        error: BadPair,
        valid: |s| s.len() == 2 && s.bytes().all(|b| b.is_ascii_lowercase()),
    }

    #[test]
    fn every_way_in_checks_and_the_wire_form_is_the_string() {
        let p: Pair = "ab".parse().unwrap();
        assert_eq!((p.as_str(), p.to_string()), ("ab", "ab".to_owned()));
        assert_eq!(format!("{p:?}"), "Pair(\"ab\")");
        assert_eq!("abc".parse::<Pair>(), Err(BadPair));
        assert_eq!(Pair::try_from("A1".to_owned()), Err(BadPair));
        let wire = postcard::to_allocvec(&p).unwrap();
        assert_eq!(wire, postcard::to_allocvec("ab").unwrap());
        assert_eq!(postcard::from_bytes::<Pair>(&wire).unwrap(), p);
        assert!(postcard::from_bytes::<Pair>(&postcard::to_allocvec("CD").unwrap()).is_err());
        assert_eq!(String::from(p), "ab");
    }
}
