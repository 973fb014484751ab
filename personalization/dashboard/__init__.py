"""A Streamlit dashboard over the published marts (read-only): see docs/dashboard.md."""
