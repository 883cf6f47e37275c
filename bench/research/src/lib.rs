//! Nothing: this package only names the crates whose C sources the research suite uses.
