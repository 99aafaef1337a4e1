//! A plan template: a plan whose literals are slots bound to spans of its prompt.
