"""The admin's use cases, one function each, called with typed arguments by the JSON API (api/)
and the dashboard (dashboard/) alike: validation, audit rows and config announcements happen
here, once. A use case that cannot proceed raises HTTPException with the status its answer
carries; the API returns it as JSON, the dashboard shows its message."""
