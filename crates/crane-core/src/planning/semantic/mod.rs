//! The semantic plan cache: a plan template whose literals are slots bound to spans of the
//! prompt it was planned for, found again for a similar prompt by its sentence embedding, and
//! served only when the new prompt's literals re-bind every slot (see ARCHITECTURE.md, "Plan
//! cache").

pub mod cache;
pub mod guard;
pub mod index;
pub mod literals;
pub mod template;
