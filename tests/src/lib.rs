//! Node lab.
