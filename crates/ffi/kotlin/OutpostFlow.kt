// Outpost in Kotlin: what UniFFI leaves to each language, a generation as a
// cold `Flow<String>` of text pieces, beside the binding generated from
// crates/ffi/src/api.rs (package uniffi.outpost). Collecting starts the
// generation on a thread of its own; cancelling the collector (or `take`,
// `first`, leaving the scope) sets the generation's CancelFlag, so it stops
// at its next token. Compiled and run against SmolLM2 by
// crates/xtask/tests/kotlin_binding.rs.
package uniffi.outpost

import kotlin.concurrent.thread
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.channels.trySendBlocking
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.callbackFlow

/** The pieces of this model's completion of [prompt] (plain text). */
fun LocalModel.generateFlow(prompt: String, options: GenerateOptions = GenerateOptions()): Flow<String> =
    pieces { cancel, sink -> generate(prompt, options, cancel, sink) }

/** The pieces of this model's answer to [messages] (its chat template). */
fun LocalModel.chatFlow(messages: List<ChatMessage>, options: GenerateOptions = GenerateOptions()): Flow<String> =
    pieces { cancel, sink -> chat(messages, options, cancel, sink) }

private fun pieces(run: (CancelFlag, PieceSink) -> Generated): Flow<String> = callbackFlow {
    val cancel = CancelFlag()
    thread(name = "outpost-generate", isDaemon = true) {
        try {
            // A closed channel (the collector went away) stops the model.
            run(cancel, object : PieceSink {
                override fun piece(text: String): Boolean = trySendBlocking(text).isSuccess
            })
            close()
        } catch (e: Throwable) {
            close(e)
        }
    }
    awaitClose { cancel.cancel() }
}
