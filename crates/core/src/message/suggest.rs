//! Near-miss field names: a field a sync request does not have that looks like a misspelling of
//! one it has (`targetRestApiPayLoad`, `vault_secret_name`, `streamkey`), and the serde schema's
//! field names to compare with.

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The field names of `T`'s serde form (a struct deriving `Deserialize`), as serde reads them:
/// the schema's own list, so no second list of a message's fields is kept.
pub fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    /// A deserializer that only notes the fields a struct asks for, and refuses.
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Fields<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields noted"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    // Refused by design: the fields are what it leaves behind.
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

/// Whether a member name the client sent may be quoted back in a refusal: at most 40
/// characters, and no control or non-ASCII character.
pub fn may_echo(name: &str) -> bool {
    name.len() <= 40 && name.chars().all(|c| c.is_ascii_graphic() || c == ' ')
}

/// The field of `known` that `name` most likely misspells: the same letters in another case
/// or with `_`/`-` between words, or at most two letters added, dropped or changed.
pub fn near_miss(name: &str, known: &[&'static str]) -> Option<&'static str> {
    // Longer names are nobody's typo of a field here, and need not be compared.
    if !may_echo(name) {
        return None;
    }
    let folded: String = name
        .chars()
        .filter(|c| !matches!(c, '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect();
    known
        .iter()
        .map(|k| (strsim::levenshtein(&folded, &k.to_ascii_lowercase()), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{StreamMessage, SyncRequest};

    #[test]
    fn the_schema_names_its_fields() {
        assert_eq!(
            fields_of::<SyncRequest>(),
            &["streamKey", "streamMessage", "statusCallback"][..]
        );
        assert_eq!(
            fields_of::<StreamMessage>(),
            &[
                "vaultSecretName",
                "vaultSecretHeader",
                "targetRestApi",
                "targetRestApiOperation",
                "targetRestApiPayload",
                "targetRestApiHeaders",
            ][..]
        );
    }

    #[test]
    fn misspelt_fields_are_recognised_and_other_fields_are_not() {
        let message = fields_of::<StreamMessage>();
        let request = fields_of::<SyncRequest>();
        for (name, meant) in [
            ("targetRestApiPayLoad", "targetRestApiPayload"),
            ("targetRestAPI", "targetRestApi"),
            ("target_rest_api_payload", "targetRestApiPayload"),
            ("vault-secret-name", "vaultSecretName"),
            ("targetRestApiHeader", "targetRestApiHeaders"),
            ("targetRestApiOpertion", "targetRestApiOperation"),
            ("vaultSecretNme", "vaultSecretName"),
            ("vaultSecretHeadr", "vaultSecretHeader"),
        ] {
            assert_eq!(near_miss(name, message), Some(meant), "{name}");
        }
        assert_eq!(near_miss("streamkey", request), Some("streamKey"));
        assert_eq!(near_miss("streamMessages", request), Some("streamMessage"));
        assert_eq!(near_miss("statusCalback", request), Some("statusCallback"));
        assert_eq!(
            near_miss("status_callback", request),
            Some("statusCallback")
        );
        for other in [
            "note",
            "correlationId",
            "metadata",
            "targetSystem",
            "payload",
            "",
        ] {
            assert_eq!(near_miss(other, message), None, "{other}");
        }
        assert_eq!(near_miss(&"x".repeat(41), message), None);
        assert_eq!(near_miss("targetRestApi\n", message), None);
        assert_eq!(near_miss("targetRestApi ", message), Some("targetRestApi"));
    }

    #[test]
    fn distances_count_insertions_deletions_and_substitutions() {
        // What near_miss's bound of 2 means: a swap of two letters is two edits.
        let edit_distance = strsim::levenshtein;
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("payload", "payloda"), 2);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
