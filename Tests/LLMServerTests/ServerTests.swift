import Testing
@testable import LLMServer
