//! Wharf's TFTP front-end (under construction in this session).
