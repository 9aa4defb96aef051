// A shared library opened at run time with dlopen: the CUDA backend links nothing from CUDA at build time, so
// the package builds and runs anywhere, and finds the driver, NVRTC and cuBLASLt only when asked for a GPU.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open shared library and the path it was opened from. Kept open for the life of the process's use of it.
public final class DynamicLibrary: @unchecked Sendable {
    public let path: String
    private let handle: UnsafeMutableRawPointer

    private init(path: String, handle: UnsafeMutableRawPointer) {
        self.path = path
        self.handle = handle
    }

    deinit { dlclose(handle) }

    /// Opens the first of `candidates` that loads. A candidate with a slash is a file that must exist; one
    /// without (a bare soname) goes to the system loader's own search (LD_LIBRARY_PATH, the ld.so cache).
    /// Throws `CUDAError.libraryNotFound` naming every candidate tried, with dlopen's reason for any that
    /// existed but failed to load; `what` ("CUDA driver") and `files` ("libcuda.so.1") word its message.
    /// `global` makes its symbols available to the libraries it loads in turn (Open MPI's plugins need that).
    public static func open(_ candidates: [String], what: String, files: String,
                            hint: String, global: Bool = false) throws(CUDAError) -> DynamicLibrary {
        var searched = [String]()
        for candidate in candidates {
            let isFile = candidate.contains("/")
            if isFile && !FileManager.default.fileExists(atPath: candidate) {
                searched.append(candidate)
                continue
            }
            if let handle = dlopen(candidate, RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL)) {
                return DynamicLibrary(path: candidate, handle: handle)
            }
            let reason = dlerror().map { String(cString: $0) } ?? "dlopen failed"
            searched.append(isFile ? "\(candidate) (\(reason))" : "\(candidate) via the system loader")
        }
        throw .libraryNotFound(what: what, files: files, searched: searched, hint: hint)
    }

    /// The address of `name`, or `CUDAError.symbolNotFound`.
    public func address(of name: String) throws(CUDAError) -> UnsafeMutableRawPointer {
        guard let symbol = dlsym(handle, name) else { throw .symbolNotFound(symbol: name, library: path) }
        return symbol
    }

    /// `name` as a C function of type `F` (an `@convention(c)` function type matching the C declaration).
    public func function<F>(_ name: String, as type: F.Type = F.self) throws(CUDAError) -> F {
        unsafeBitCast(try address(of: name), to: F.self)
    }
}

/// Where the CUDA libraries may be: an override from the environment, then LD_LIBRARY_PATH, the usual system
/// folders, and the `nvidia/...` folders of pip's CUDA wheels in Python site-packages.
enum LibrarySearch {
    /// `lib<base>.so.13` and `.so.12`, newest major version first unless `preferredMajor` (the driver's CUDA
    /// major version: code from a newer toolkit library may not load on an older driver) says which goes first.
    static func versionedNames(_ base: String, preferredMajor: Int?) -> [String] {
        let majors = [13, 12]
        let ordered = preferredMajor.map { p in majors.filter { $0 <= p } + majors.filter { $0 > p } } ?? majors
        return ordered.map { "lib\(base).so.\($0)" }
    }

    /// Every candidate path for the given file names, in search order, without duplicates.
    /// `override` names an environment variable holding a file or a folder to try first; `wheelFolders` are
    /// folders under site-packages (such as `nvidia/cuda_nvrtc/lib`) where a pip wheel puts the library.
    static func candidates(names: [String], override: String?, wheelFolders: [String],
                           environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var folders = [String](), files = [String]()
        if let override, let value = environment[override], !value.isEmpty {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: value, isDirectory: &isFolder), isFolder.boolValue {
                folders.append(value)
            } else {
                files.append(value)
            }
        }
        folders += (environment["LD_LIBRARY_PATH"] ?? "").split(separator: ":").map(String.init)
        folders += systemFolders
        for site in sitePackages(environment: environment) {
            folders += wheelFolders.map { site + "/" + $0 }
        }
        var result = files
        for folder in folders where !folder.isEmpty {
            for name in names { result.append(folder.hasSuffix("/") ? folder + name : folder + "/" + name) }
        }
        result += names  // finally the system loader's own search, by soname
        var seen = Set<String>()
        return result.filter { seen.insert($0).inserted }
    }

    static var systemFolders: [String] {
        #if arch(arm64)
        let multiarch = "/usr/lib/aarch64-linux-gnu"
        let target = "/usr/local/cuda/targets/sbsa-linux/lib"
        #else
        let multiarch = "/usr/lib/x86_64-linux-gnu"
        let target = "/usr/local/cuda/targets/x86_64-linux/lib"
        #endif
        return ["/usr/local/cuda/lib64", target, multiarch, "/usr/lib64", "/usr/lib", "/usr/lib/wsl/lib"]
    }

    /// Python package folders (site-packages, dist-packages) of active and usual environments: virtualenv,
    /// conda, pyenv versions, ~/.local, /usr/local, /usr, and those on PYTHONPATH.
    static func sitePackages(environment: [String: String]) -> [String] {
        let fm = FileManager.default
        let home = environment["HOME"] ?? NSHomeDirectory()
        var prefixes = [String]()
        for key in ["VIRTUAL_ENV", "CONDA_PREFIX"] { if let p = environment[key], !p.isEmpty { prefixes.append(p) } }
        let pyenv = environment["PYENV_ROOT"] ?? home + "/.pyenv"
        if let versions = try? fm.contentsOfDirectory(atPath: pyenv + "/versions") {
            prefixes += versions.sorted().map { pyenv + "/versions/" + $0 }
        }
        prefixes += [home + "/.local", "/usr/local", "/usr", "/opt/conda"]
        var result = (environment["PYTHONPATH"] ?? "").split(separator: ":").map(String.init)
        for prefix in prefixes {
            guard let entries = try? fm.contentsOfDirectory(atPath: prefix + "/lib") else { continue }
            for entry in entries.sorted() where entry.hasPrefix("python3") {
                for kind in ["site-packages", "dist-packages"] {
                    let folder = prefix + "/lib/" + entry + "/" + kind
                    if fm.fileExists(atPath: folder) { result.append(folder) }
                }
            }
        }
        if fm.fileExists(atPath: "/usr/lib/python3/dist-packages") { result.append("/usr/lib/python3/dist-packages") }
        return result
    }
}
