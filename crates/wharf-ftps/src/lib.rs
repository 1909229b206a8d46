//! Wharf's FTPS front-end (under construction in this session).
