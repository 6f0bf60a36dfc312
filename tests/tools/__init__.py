"""Small tools the tests serve: each exercises one server behaviour."""
