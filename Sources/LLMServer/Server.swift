// The HTTP server: placeholder while the server is built.
import LLM
