//! The live session.
