//! Wharf's SFTP front-end (under construction in this session).
