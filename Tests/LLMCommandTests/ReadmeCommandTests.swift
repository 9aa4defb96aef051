// The README's commands against the `llm` executable's own command tree, so that a renamed or removed subcommand
// or flag fails here instead of in a newcomer's terminal. Two checks:
// - every `llm …` command of the README's shell blocks (```sh, ```bash, ```console, and the `$ ` lines of ```text
//   transcripts; line continuations joined, `NAME=value` variables substituted, pipes and `&&` split) is parsed by
//   `LLMCommand.parseAsRoot`, which also runs each command's `validate()`: the subcommand must exist, every flag
//   parse and every value be accepted. A `python3 SCRIPT.py` or `scripts/….sh` beside it must exist in the
//   repository, and no command may reach outside it (`../`).
// - every inline mention (`llm sft --lora-rank R` in prose, the synopses of the commands table) names existing
//   subcommands (`train|sft` meaning both) and only flags their help lists.
// Commands that read files made by earlier steps (runs/latest, …) are only parsed, never run.
import ArgumentParser
import Foundation
import Testing
@testable import llm

@Suite struct ReadmeCommandTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let readme: String = (try? String(contentsOf: repository.appendingPathComponent("README.md"), encoding: .utf8)) ?? ""

    @Test func readmeShowsCommands() {
        #expect(ReadmeCommands.commands(in: Self.readme).filter(\.isLLM).count >= 30)
        #expect(ReadmeCommands.mentions(in: Self.readme).count >= 40)
    }

    @Test func everyCommandParses() {
        for command in ReadmeCommands.commands(in: Self.readme) {
            let place = "README.md:\(command.line): \(command.words.joined(separator: " "))"
            for word in command.words where word.contains("../") {
                Issue.record("\(place): \(word) is outside the repository, which a clone does not have")
            }
            if let problem = command.parseProblem(repository: Self.repository) { Issue.record("\(place): \(problem)") }
        }
    }

    @Test func everyMentionNamesRealSubcommandsAndFlags() {
        for mention in ReadmeCommands.mentions(in: Self.readme) {
            for problem in mention.problems() { Issue.record("README.md:\(mention.line): `\(mention.text)`: \(problem)") }
        }
    }

    /// The checks themselves catch drift: a removed flag, an unknown subcommand, a bad value, a missing script.
    @Test func checksFailOnDrift() {
        let broken = """
            ```sh
            .build/release/llm train --input tinyshakespeare --no-such-flag 3
            llm trian --input x.txt
            llm sample --model runs/latest --max-new-tokens many
            SMOL=/m.gguf
            printf 'Hi\\n' | llm chat --model $SMOL --temperature 0 \\
                --max-new-tokens 8 && python3 reference/no_such_script.py
            ```
            ```text
            $ llm chat --model m.gguf --temprature 0
            ```
            `llm sft --lora-rnak 8`, `llm train|smple --steps 3` and `llm tokenizer encode --allow-special`.
            """
        let commands = ReadmeCommands.commands(in: broken)
        #expect(commands.map(\.line) == [2, 3, 4, 6, 6, 6, 10])
        let problems = commands.map { $0.parseProblem(repository: Self.repository) }
        #expect(problems[0]?.contains("--no-such-flag") == true, "\(problems[0] ?? "accepted")")
        #expect(problems[1]?.contains("trian") == true, "\(problems[1] ?? "accepted")")
        #expect(problems[2]?.contains("many") == true, "\(problems[2] ?? "accepted")")
        #expect(problems[3] == nil, "\(problems[3] ?? "")")  // printf
        #expect(problems[4] == nil && commands[4].words.contains("/m.gguf"), "\(problems[4] ?? "") \(commands[4].words)")
        #expect(problems[5]?.contains("no_such_script.py") == true, "\(problems[5] ?? "accepted")")
        #expect(problems[6]?.contains("--temprature") == true, "\(problems[6] ?? "accepted")")
        let mentions = ReadmeCommands.mentions(in: broken)
        #expect(mentions.count == 3)
        #expect(mentions[0].problems().contains { $0.contains("--lora-rnak") })
        #expect(mentions[1].problems().contains { $0.contains("smple") })
        #expect(mentions[2].problems().isEmpty)
    }
}

/// Commands and mentions of `llm` in Markdown.
enum ReadmeCommands {
    struct Command {
        let line: Int
        let words: [String]

        /// The words from `llm` on (after `NAME=value` environment words), or nil when this runs something else.
        var llmArguments: [String]? {
            let rest = words.drop { $0.range(of: #"^[A-Za-z_][A-Za-z0-9_]*="#, options: .regularExpression) != nil }
            guard let first = rest.first, first == "llm" || first.hasSuffix("/llm") else { return nil }
            return Array(rest.dropFirst())
        }

        var isLLM: Bool { llmArguments != nil }

        /// Why `llm` would refuse these arguments (its own parser's message), or a script that is not in the
        /// repository; nil when fine.
        func parseProblem(repository: URL) -> String? {
            if let arguments = llmArguments {
                if let problem = LLMCommand.unknownCommand(in: arguments) { return problem }
                do {
                    _ = try LLMCommand.parseAsRoot(arguments)
                } catch {
                    if LLMCommand.exitCode(for: error).isSuccess { return nil }  // --help
                    return LLMCommand.message(for: error)
                }
                return nil
            }
            let script: String? = words.first == "python3" || words.first == "bash" ? words.dropFirst().first
                : words.first?.hasSuffix(".sh") == true ? words.first : nil
            if let script, !script.hasPrefix("-"), script.hasSuffix(".py") || script.hasSuffix(".sh"),
               !FileManager.default.fileExists(atPath: repository.appendingPathComponent(script).path) {
                return "\(script) is not in the repository"
            }
            return nil
        }
    }

    /// Every simple command (a pipeline's or `&&` list's parts apart) in the shell blocks, with the Markdown line it
    /// starts on.
    static func commands(in markdown: String) -> [Command] {
        var result = [Command]()
        var fence: String?  // the open block's language
        var variables = [String: String]()
        var pending: (line: Int, text: String)?
        for (index, raw) in markdown.components(separatedBy: "\n").enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("```") {
                fence = fence == nil ? String(line.dropFirst(3)) : nil
                variables = [:]
                pending = nil
                continue
            }
            guard let language = fence else { continue }
            var text: Substring
            if let open = pending {
                text = Substring(open.text + " " + line)
            } else if ["sh", "bash", "shell", "zsh"].contains(language) {
                text = Substring(line)
            } else if ["console", "text", "shell-session"].contains(language), line.hasPrefix("$ ") {
                text = line.dropFirst(2)
            } else {
                continue
            }
            let start = pending?.line ?? index + 1
            if text.hasSuffix("\\") {
                pending = (start, String(text.dropLast()))
                continue
            }
            pending = nil
            for words in shellCommands(String(text), variables: variables) {
                if words.allSatisfy({ $0.contains("=") && !$0.hasPrefix("-") }) {  // NAME=value NAME2=value2
                    for word in words {
                        let parts = word.split(separator: "=", maxSplits: 1)
                        variables[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
                    }
                } else {
                    result.append(Command(line: start, words: words))
                }
            }
        }
        return result
    }

    /// The words of each simple command in one line of shell: quotes and backslashes resolved, `$NAME` and `${NAME}`
    /// substituted (by the name itself when unknown), `$(…)` as one placeholder word, `#` comments dropped, split at
    /// `|`, `||`, `&&` and `;`.
    static func shellCommands(_ line: String, variables: [String: String]) -> [[String]] {
        var commands = [[String]](), words = [String](), word = "", inWord = false
        var quote: Character?
        let chars = Array(line)
        var i = 0
        func endWord() {
            if inWord { words.append(word) }
            word = ""
            inWord = false
        }
        func endCommand() {
            endWord()
            if !words.isEmpty { commands.append(words) }
            words = []
        }
        func expand() {  // at a `$`
            var j = i + 1
            if j < chars.count, chars[j] == "(" {
                var depth = 0
                while j < chars.count {
                    if chars[j] == "(" { depth += 1 } else if chars[j] == ")" { depth -= 1; if depth == 0 { break } }
                    j += 1
                }
                word += "X"
                i = j + 1
                return
            }
            let braced = j < chars.count && chars[j] == "{"
            if braced { j += 1 }
            var name = ""
            while j < chars.count, chars[j].isLetter || chars[j].isNumber || chars[j] == "_" {
                name.append(chars[j])
                j += 1
            }
            if braced, j < chars.count, chars[j] == "}" { j += 1 }
            word += name.isEmpty ? "$" : variables[name] ?? name
            i = j
        }
        while i < chars.count {
            let c = chars[i]
            if let q = quote {
                if c == q {
                    quote = nil
                } else if q == "\"" && c == "$" {
                    expand()
                    continue
                } else if q == "\"" && c == "\\" && i + 1 < chars.count {
                    i += 1
                    word.append(chars[i])
                } else {
                    word.append(c)
                }
                i += 1
                continue
            }
            switch c {
            case "'", "\"":
                quote = c
                inWord = true
            case "\\" where i + 1 < chars.count:
                i += 1
                word.append(chars[i])
                inWord = true
            case "$":
                inWord = true
                expand()
                continue
            case " ", "\t":
                endWord()
            case "#" where !inWord:
                endCommand()
                return commands
            case ">", "<":  // a redirection and its target are not arguments (`2>&1`, `> out.txt`)
                if inWord && word.allSatisfy(\.isNumber) { word = ""; inWord = false } else { endWord() }
                i += 1
                while i < chars.count, chars[i] == ">" || chars[i] == "&" { i += 1 }
                while i < chars.count, chars[i] == " " { i += 1 }
                while i < chars.count, !" \t|;&".contains(chars[i]) { i += 1 }
                continue
            case "|", ";", "&":
                endCommand()
                if i + 1 < chars.count, chars[i + 1] == c { i += 1 }
            default:
                word.append(c)
                inWord = true
            }
            i += 1
        }
        endCommand()
        return commands
    }

    /// An inline code span that starts with `llm ` (prose, or a synopsis in the commands table).
    struct Mention {
        let line: Int
        let text: String

        /// Subcommands that do not exist and flags that the named commands' help does not list.
        func problems() -> [String] {
            var words = text.split(separator: " ").map(String.init).dropFirst()  // "llm"
            var commands: [[ParsableCommand.Type]] = [[LLMCommand.self]]
            var problems = [String]()
            // Walk down the tree while the commands have subcommands; `a|b` names both.
            while let word = words.first, !word.hasPrefix("-"), let current = commands.last,
                  current.allSatisfy({ !$0.configuration.subcommands.isEmpty }) {
                words = words.dropFirst()
                var next = [ParsableCommand.Type]()
                for name in word.split(separator: "|").map(String.init) {
                    let found = current.compactMap { command in
                        command.configuration.subcommands.first { $0._commandName == name || $0.configuration.aliases.contains(name) }
                    }
                    if found.count == current.count { next += found } else { problems.append("no subcommand \(name)") }
                }
                if next.isEmpty { return problems }
                commands.append(next)
            }
            let leaves = commands.last ?? []
            let flags = words.joined(separator: " ").matches(of: /--[a-z][a-z0-9-]*/).map { String($0.output) }
            for leaf in leaves {
                let help = LLMCommand.helpMessage(for: leaf, columns: 10_000)
                for flag in Set(flags).sorted() where help.firstMatch(of: try! Regex("\(flag)(?![a-z0-9-])")) == nil {
                    problems.append("\(leaf._commandName) has no \(flag)")
                }
            }
            return problems
        }
    }

    /// Every inline code span that starts with `llm ` outside the fenced blocks, paired backtick by backtick through
    /// each paragraph (a span may continue on the next line); `\|` in a table cell is `|`.
    static func mentions(in markdown: String) -> [Mention] {
        var result = [Mention]()
        var inFence = false
        var open: (line: Int, text: String)?  // an unclosed span
        for (index, line) in markdown.components(separatedBy: "\n").enumerated() {
            if line.trimmingCharacters(in: .whitespaces).hasPrefix("```") { inFence.toggle(); open = nil; continue }
            if inFence { continue }
            if line.trimmingCharacters(in: .whitespaces).isEmpty { open = nil; continue }  // a paragraph ends
            var pieces = line.split(separator: "`", omittingEmptySubsequences: false).map(String.init)
            if let span = open {  // the line's text up to its first backtick ends the span
                pieces[0] = span.text + " " + pieces[0]
            }
            // pieces alternate outside, inside, outside, …, starting inside when a span was open.
            var inside = open != nil
            for (k, piece) in pieces.enumerated() {
                let last = k == pieces.count - 1
                if inside && last {
                    open = (open?.line ?? index + 1, piece)  // still open at the end of the line
                } else if inside {
                    let text = piece.replacingOccurrences(of: "\\|", with: "|")
                    if text.hasPrefix("llm ") { result.append(Mention(line: k == 0 ? open?.line ?? index + 1 : index + 1, text: text)) }
                    if k == 0 { open = nil }
                } else if last {
                    open = nil
                }
                inside.toggle()
            }
        }
        return result
    }
}
