//! Literals of a prompt: numbers, quoted text and free-text spans, with their byte spans.
