//! `ferrolb-tests`: test harnesses (`kubesim`, `netlab`), integration and end-to-end tests, and the
//! `ferrolb-lab` demo. Built in the kubesim and speaker issues; this crate holds its place in the
//! workspace.
