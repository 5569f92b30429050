"""Test helpers: real PostgreSQL servers, throwaway apps, an HTTP client."""
