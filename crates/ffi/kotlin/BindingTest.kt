// The Kotlin binding end to end (run by crates/xtask/tests/kotlin_binding.rs
// on the JVM with JNA): generate and chat as Flows equal the blocking calls,
// a Flow cancelled midway stops the model, the guard redacts and restores,
// a bad path fails with the path named. Exits non-zero on any mismatch.
import kotlin.system.exitProcess
import kotlinx.coroutines.cancel
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import uniffi.outpost.*

fun check(ok: Boolean, what: () -> String) {
    if (!ok) {
        System.err.println("FAILED: " + what())
        exitProcess(1)
    }
}

fun main(args: Array<String>) {
    val model = LocalModel.open(args[0])
    val opts = GenerateOptions(maxTokens = 16u, greedy = true, threads = 2u)
    val whole = model.generate("The capital of France is", opts)
    val pieces = runBlocking { model.generateFlow("The capital of France is", opts).toList() }
    check(pieces.joinToString("") == whole.text && pieces.size >= 2) { "flow $pieces vs ${whole.text}" }
    println("generate: ${whole.text.trim()} (${pieces.size} pieces)")

    val msgs = listOf(ChatMessage(role = "user", content = "Which city is the capital of France?"))
    val chat = model.chat(msgs, opts)
    val chatPieces = runBlocking { model.chatFlow(msgs, opts).toList() }
    check(chatPieces.joinToString("") == chat.text && chat.text.isNotBlank()) { "chat flow $chatPieces vs ${chat.text}" }

    // take(5) cancels the collection: the model stops long before 400 tokens.
    val long = GenerateOptions(maxTokens = 400u, greedy = true, threads = 2u)
    val full = System.nanoTime()
    val first = runBlocking { model.generateFlow("Once upon a time", long).take(5).toList() }
    check(first.size == 5) { "take(5) gave ${first.size}" }
    // A collecting coroutine cancelled from outside after 3 pieces.
    var seen = 0
    runBlocking {
        val job = launch {
            model.generateFlow("Once upon a time", long).collect {
                seen += 1
                if (seen == 3) cancel()
            }
        }
        job.join()
    }
    check(seen == 3) { "cancelled collector saw $seen pieces" }
    // The model is free again at once: the cancelled generations stopped.
    val after = model.generate("The capital of France is", opts)
    check(after.text == whole.text) { "after cancel: ${after.text}" }
    println("cancelled: after ${first.size} and $seen pieces, ${(System.nanoTime() - full) / 1_000_000} ms")

    val guard = PiiGuard("US")
    val text = "Email jane.doe@example.com about card 4111 1111 1111 1111."
    val kinds = guard.scan(text).map { it.entity }.toSet()
    check(kinds.containsAll(listOf("EMAIL_ADDRESS", "CREDIT_CARD"))) { "scan $kinds" }
    val r = guard.redact(text)
    check(!r.text().contains("jane.doe") && !r.text().contains("4111")) { "redacted ${r.text()}" }
    check(r.restore("I wrote to <EMAIL_ADDRESS_1>.") == "I wrote to jane.doe@example.com.") { "restore" }
    println("redacted: ${r.text()}")

    try {
        LocalModel.open("/nonexistent/model.gguf")
        check(false) { "a missing model opened" }
    } catch (e: OutpostException.Failed) {
        check(e.reason.contains("/nonexistent/model.gguf")) { e.reason }
        println("error: ${e.reason}")
    }
    println("ok: kotlin")
}
