// `llm prepare`: text files in, llm.c token shards out. Every document is preceded by the document
// separator (<|endoftext|> for GPT-2), as llm.c's preprocessing does; the first `valFraction` of the
// token stream becomes NAME_val_000000.bin and the rest NAME_train_000001.bin, NAME_train_000002.bin, …
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

public struct DatasetPreparation {
    public var inputs: [String]          // .txt files (one document each), .jsonl files (one per line), folders
    public var outputDirectory: String
    public var name: String
    public var valFraction: Double = 0.1
    public var shardTokens: Int = 100_000_000
    public var lossy = false              // replace invalid UTF-8 instead of failing
    public var overwrite = false          // replace shards of the same name
    public var threads: Int = ProcessInfoCores.count

    public init(inputs: [String], outputDirectory: String, name: String) {
        self.inputs = inputs
        self.outputDirectory = outputDirectory
        self.name = name
    }

    public struct Result: Sendable {
        public var documents: Int
        public var bytes: Int
        public var valTokens: Int
        public var trainTokens: Int
        public var files: [String]
    }

    /// Tokenizes and writes the shards. `progress(bytesDone, bytesTotal)` is called as documents finish.
    public func run(tokenizer: Tokenizer, progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        guard valFraction > 0 && valFraction < 1 else {
            throw DataError.invalidArgument("--val-fraction \(valFraction) must be between 0 and 1 (exclusive)")
        }
        guard shardTokens > 0 && shardTokens <= Int(Int32.max) else {
            throw DataError.invalidArgument("--shard-tokens \(shardTokens) must be between 1 and 2147483647 (a shard's header counts its tokens in 32 bits)")
        }
        guard let separator = tokenizer.documentSeparator else {
            throw DataError.invalidArgument("the tokenizer has no <|endoftext|> or <|bos|> token to separate documents")
        }
        let files = try expand(inputs)
        let existing = try shardFiles(in: outputDirectory)
        if !existing.isEmpty && !overwrite { throw DataError.existingShards(directory: outputDirectory, name: name) }

        let total = try files.reduce(0) { $0 + (try fileSize($1)) }
        var tokens = [Int32](), done = 0, documents = 0
        tokens.reserveCapacity(total / 3)
        for file in files {
            let bytes = try read(file)
            for document in try split(bytes, file: file) {
                tokens.append(separator)
                tokens += document.withUnsafeBufferPointer { tokenizer.encodeParallel(utf8: $0, threads: threads) }
                documents += 1
            }
            done += bytes.count
            progress?(done, total)
        }
        guard documents > 0, tokens.count > documents else {
            throw DataError.emptyInput(path: inputs.joined(separator: ", "))
        }
        let valCount = min(max(1, Int(Double(tokens.count) * valFraction)), tokens.count - 1)

        // Write everything into a private folder first, then move it into place: no partial output.
        try createDirectory(outputDirectory)
        let staging = outputDirectory + "/.prepare-\(getpid())"
        try createDirectory(staging)
        defer { try? FileManager.default.removeItem(atPath: staging) }
        let valName = "\(name)_val_000000.bin"
        try TokenShard.write(tokens[..<valCount], to: staging + "/" + valName, vocabSize: tokenizer.vocabSize)
        let writer = ShardWriter(vocabSize: tokenizer.vocabSize, tokensPerShard: shardTokens) {
            staging + "/" + String(format: "%@_train_%06d.bin", name, $0 + 1)
        }
        try writer.append(tokens[valCount...])
        let trainPaths = try writer.finish()
        let names = [valName] + trainPaths.map { ($0 as NSString).lastPathComponent }
        for old in existing where !names.contains(old) { try? FileManager.default.removeItem(atPath: outputDirectory + "/" + old) }
        for n in names {
            guard rename(staging + "/" + n, outputDirectory + "/" + n) == 0 else {
                throw DataError.writeFailed(path: outputDirectory + "/" + n, reason: String(cString: strerror(errno)))
            }
        }
        return Result(documents: documents, bytes: done, valTokens: valCount, trainTokens: tokens.count - valCount,
                      files: names.map { outputDirectory + "/" + $0 })
    }

    /// Files named directly, and the .txt/.jsonl files inside named folders (sorted).
    private func expand(_ inputs: [String]) throws -> [String] {
        var files = [String]()
        for input in inputs {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: input, isDirectory: &isDir) else {
                throw DataError.unreadable(path: input, reason: "no such file or folder")
            }
            if isDir.boolValue {
                let entries = (try? FileManager.default.contentsOfDirectory(atPath: input)) ?? []
                let found = entries.filter { $0.hasSuffix(".txt") || $0.hasSuffix(".jsonl") }.sorted()
                if found.isEmpty { throw DataError.emptyInput(path: input + " (no .txt or .jsonl files)") }
                files += found.map { input + "/" + $0 }
            } else {
                files.append(input)
            }
        }
        return files
    }

    private func shardFiles(in dir: String) throws -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return entries.filter {
            ($0.hasPrefix(name + "_val_") || $0.hasPrefix(name + "_train_")) && $0.hasSuffix(".bin")
        }.sorted()
    }

    private func fileSize(_ path: String) throws -> Int {
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: path), let size = attrs[.size] as? Int else {
            throw DataError.unreadable(path: path, reason: "cannot stat")
        }
        return size
    }

    private func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError.unreadable(path: path, reason: "no such file or not readable")
        }
        var bytes = [UInt8](data)
        if let offset = firstInvalidUTF8Offset(bytes) {
            guard lossy else { throw DataError.invalidUTF8(path: path, offset: offset) }
            bytes = Array(String(decoding: bytes, as: UTF8.self).utf8)
        }
        return bytes
    }

    /// The documents of one file: the whole text, or each JSONL line's "text" field.
    private func split(_ bytes: [UInt8], file: String) throws -> [[UInt8]] {
        guard file.hasSuffix(".jsonl") else { return bytes.isEmpty ? [] : [bytes] }
        var documents = [[UInt8]]()
        for (n, line) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                throw DataError.badJSONL(path: file, line: n + 1, reason: "not a JSON object")
            }
            guard let text = object["text"] as? String else {
                throw DataError.badJSONL(path: file, line: n + 1, reason: "no string field \"text\"")
            }
            if !text.isEmpty { documents.append(Array(text.utf8)) }
        }
        return documents
    }

    private func createDirectory(_ path: String) throws {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw DataError.writeFailed(path: path, reason: "cannot create the folder")
        }
    }
}

/// Public datasets `llm prepare NAME` knows how to fetch.
public enum KnownDataset: String, CaseIterable, Sendable {
    case tinyshakespeare

    public var url: String {
        switch self {
        case .tinyshakespeare: "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
        }
    }

    /// The cached copy ($XDG_CACHE_HOME/llm or ~/.cache/llm), downloaded first if missing.
    public func cachedFile() throws -> String {
        let env = ProcessInfo.processInfo.environment
        let cache = (env["XDG_CACHE_HOME"] ?? (env["HOME"] ?? NSTemporaryDirectory()) + "/.cache") + "/llm"
        let path = cache + "/\(rawValue).txt"
        if FileManager.default.fileExists(atPath: path) { return path }
        let data = try download(url)
        try? FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
        try writeFileAtomically(path) { try $0.write([UInt8](data)) }
        return path
    }

    /// GETs `url` (30 s timeout), waiting on a semaphore: this runs once, before any model compute.
    private func download(_ url: String) throws -> Data {
        final class Box: @unchecked Sendable { var result: Result<Data, DataError>? }  // written once, then read
        let box = Box(), done = DispatchSemaphore(value: 0)
        var request = URLRequest(url: URL(string: url)!)
        request.timeoutInterval = 30
        URLSession.shared.dataTask(with: request) { data, response, error in
            if let error {
                box.result = .failure(.downloadFailed(url: url, reason: error.localizedDescription))
            } else if let http = response as? HTTPURLResponse, http.statusCode != 200 {
                box.result = .failure(.downloadFailed(url: url, reason: "HTTP status \(http.statusCode)"))
            } else if let data, !data.isEmpty {
                box.result = .success(data)
            } else {
                box.result = .failure(.downloadFailed(url: url, reason: "empty response"))
            }
            done.signal()
        }.resume()
        done.wait()
        return try box.result!.get()
    }
}
