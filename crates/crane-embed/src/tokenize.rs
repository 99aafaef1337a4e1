//! Loads `tokenizer.json` and sets it up the way sentence-transformers calls it.
//!
//! The tokenizer.json shipped with all-MiniLM-L6-v2 carries its own truncation (128 tokens)
//! and fixed padding (to 128): sentence-transformers ignores both, truncating to the folder's
//! `max_seq_length` (256) and padding a batch to its longest text. Used as it is, the file
//! would cut texts at 128 tokens (different vectors) and run every short prompt through 128
//! positions (slow), so truncation is replaced here and padding turned off (the embedder pads
//! a batch itself).

use std::path::Path;

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::EmbedError;

/// Parses `bytes` (the contents of `path`), truncates to `max_len` tokens (special tokens
/// included) and pads nothing: the embedder pads each batch itself and masks the padding.
pub(crate) fn load_tokenizer(
    bytes: &[u8],
    path: &Path,
    max_len: usize,
) -> Result<Tokenizer, EmbedError> {
    let mut tokenizer = Tokenizer::from_bytes(bytes).map_err(|source| EmbedError::Tokenizer {
        path: path.to_path_buf(),
        source,
    })?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length: max_len,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }))
        .map_err(|source| EmbedError::Tokenizer {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(tokenizer)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A miniature BERT tokenizer.json with the real file's structure, including its 128-token
    /// truncation and fixed padding, over a vocabulary of a few words.
    pub(crate) const TINY_TOKENIZER: &str = r###"{
      "version": "1.0",
      "truncation": {"max_length": 128, "strategy": "LongestFirst", "stride": 0},
      "padding": {"strategy": {"Fixed": 128}, "direction": "Right", "pad_to_multiple_of": null,
                  "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
      "added_tokens": [
        {"id": 0, "content": "[PAD]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
        {"id": 1, "content": "[UNK]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
        {"id": 2, "content": "[CLS]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
        {"id": 3, "content": "[SEP]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
      ],
      "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                     "strip_accents": null, "lowercase": true},
      "pre_tokenizer": {"type": "BertPreTokenizer"},
      "post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                 {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
        "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                           "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
      "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
      "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                "max_input_chars_per_word": 100,
                "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "add": 4, "a": 5,
                          "todo": 6, "to": 7, "buy": 8, "milk": 9, "##s": 10, "cafe": 11, "?": 12}}
    }"###;

    fn tiny(max_len: usize) -> Tokenizer {
        match load_tokenizer(TINY_TOKENIZER.as_bytes(), Path::new("tiny.json"), max_len) {
            Ok(t) => t,
            Err(e) => panic!("tiny tokenizer: {e}"),
        }
    }

    fn ids(t: &Tokenizer, text: &str) -> Vec<u32> {
        match t.encode(text, true) {
            Ok(enc) => enc.get_ids().to_vec(),
            Err(e) => panic!("encode {text:?}: {e}"),
        }
    }

    #[test]
    fn short_text_is_not_padded_to_the_files_fixed_128() {
        let t = tiny(256);
        assert_eq!(
            ids(&t, "Add a TODO to buy milk"),
            vec![2, 4, 5, 6, 7, 8, 9, 3]
        );
    }

    #[test]
    fn long_text_is_cut_at_max_len_including_special_tokens() {
        let t = tiny(256);
        let text = "milk ".repeat(1000);
        let got = ids(&t, &text);
        assert_eq!(got.len(), 256);
        assert_eq!(got.first(), Some(&2));
        assert_eq!(got.last(), Some(&3));
        // The file's own 128 would have cut it shorter.
        assert!(ids(&tiny(300), &text).len() == 300);
    }

    #[test]
    fn unknown_words_accents_and_empty_text() {
        let t = tiny(256);
        // BertNormalizer lower-cases, and its strip_accents null follows lowercase (as in
        // BERT's uncased normaliser), so "Café" → "cafe".
        assert_eq!(ids(&t, "Café?"), vec![2, 11, 12, 3]);
        assert_eq!(ids(&t, "zebra"), vec![2, 1, 3]);
        assert_eq!(ids(&t, ""), vec![2, 3]);
    }

    #[test]
    fn nothing_is_padded_even_in_a_batch() {
        let t = tiny(256);
        let encs = match t.encode_batch(vec!["milk", "add a todo"], true) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(encs[0].get_ids(), &[2, 9, 3]);
        assert_eq!(encs[0].get_attention_mask(), &[1, 1, 1]);
        assert_eq!(encs[1].get_ids(), &[2, 4, 5, 6, 3]);
    }

    #[test]
    fn garbage_is_a_tokenizer_error_naming_the_file() {
        match load_tokenizer(b"{not json", Path::new("/m/tokenizer.json"), 256) {
            Err(e @ EmbedError::Tokenizer { .. }) => {
                assert!(e.to_string().contains("/m/tokenizer.json"), "{e}");
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("garbage parsed"),
        }
    }
}
