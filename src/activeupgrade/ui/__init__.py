"""The consoles: web (Starlette + Jinja2) and terminal (Textual); thin views over the API."""
