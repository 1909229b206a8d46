//! Wharf's FTP front-end (under construction in this session).
