// One place that turns library errors into a one-line message on stderr and a non-zero exit.
import ArgumentParser
import Foundation
import LLM

/// Runs `body`; a library error becomes `llm: <message>` on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as FormatError {
        fail(error.description)
    } catch let error as ModelError {
        fail(error.description)
    } catch let error as TokenizerError {
        fail(error.description)
    } catch let error as DataError {
        fail(error.description)
    } catch let error as TrainingError {
        fail(error.description)
    } catch let error as RunLogError {
        fail(error.description)
    } catch let error as ScheduleError {
        fail(error.description)
    } catch let error as CUDAError {
        fail(error.description)
    } catch let error as ChatFormatError {
        fail(error.description)
    } catch let error as ChatSessionError {
        fail(error.description)
    } catch let error as InferenceEngineError {
        fail(error.description)
    } catch let error as ChatTemplateError {
        fail(error.description)
    } catch let error as ChatTemplateLoadError {
        fail(error.description)
    } catch let error as TemplateChatFormatError {
        fail(error.description)
    } catch let error as HubError {
        fail(error.description)
    } catch let error as EvalError {
        fail(error.description)
    } catch let error as DistributedError {
        fail(error.description)
    } catch where Ranks.mpi != nil {
        fail("\(error)")
    }
}

private func fail(_ message: String) -> Never {
    // Under mpirun, name the rank and end every rank now: the others would wait for this one forever.
    if let mpi = Ranks.mpi {
        FileHandle.standardError.write(Data("llm: error: rank \(mpi.rank): \(message)\n".utf8))
        mpi.abort(code: 1)
    }
    FileHandle.standardError.write(Data("llm: error: \(message)\n".utf8))
    exit(1)
}
