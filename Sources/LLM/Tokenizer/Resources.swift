// Finds the files the package ships (the GPT-2 vocabulary) without SwiftPM's Bundle.module, which
// crashes when its folder is missing; a copied binary gets a clear error instead.
import Foundation

enum PackageResources {
    /// The folder `name` (e.g. "gpt2") from, in order: $LLM_RESOURCES, the resource bundle beside the
    /// executable (where `swift build` puts it), and the source tree this binary was built from.
    static func folder(_ name: String, containing file: String) throws -> String {
        var candidates = [String]()
        if let env = ProcessInfo.processInfo.environment["LLM_RESOURCES"] {
            candidates.append(env + "/" + name)
            candidates.append(env)
        }
        let exeDir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
            .deletingLastPathComponent()
        candidates.append(exeDir.appendingPathComponent("LLM_LLM.resources/\(name)").path)
        candidates.append(Bundle.main.bundleURL.appendingPathComponent("LLM_LLM.resources/\(name)").path)
        let sourceDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(sourceDir.appendingPathComponent("Resources/\(name)").path)
        for c in candidates where FileManager.default.fileExists(atPath: c + "/" + file) { return c }
        throw TokenizerError.resourceNotFound(name: "the \(name) vocabulary", searched: candidates)
    }
}
