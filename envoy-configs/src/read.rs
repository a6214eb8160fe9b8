//! Reading resource files.
