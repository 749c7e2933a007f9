"""An agent framework from PyPI, unchanged: LangChain's ChatOpenAI with
bind_tools runs a two-tool task against `outpost serve` (run by tools.rs,
which passes OUTPOST_BASE_URL): the model calls the tools, LangChain runs
them and sends the results back, and the model answers."""
import json
import os

from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

import client_checks
from client_checks import check


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


TOOLS = {"add": add, "multiply": multiply}
llm = ChatOpenAI(base_url=os.environ["OUTPOST_BASE_URL"] + "/v1", api_key="unused", model="smollm2-135m", temperature=0, max_tokens=200)
agent = llm.bind_tools([add, multiply])
messages = [HumanMessage("What is 3 plus 4? And what is 5 times 6? Use the tools.")]
used = []
answer = None
for step in range(4):
    ai = agent.invoke(messages)
    messages.append(ai)
    if not ai.tool_calls:
        answer = ai
        break
    for call in ai.tool_calls:
        check(call["name"] in TOOLS, f"a known tool: {call}")
        check(all(isinstance(call["args"].get(k), int) for k in ("a", "b")), f"integer arguments a and b: {call}")
        used.append(call["name"])
        messages.append(ToolMessage(content=str(TOOLS[call["name"]].invoke(call["args"])), tool_call_id=call["id"]))
check(set(used) == {"add", "multiply"}, f"both tools were used: {used}")
check(answer is not None and str(answer.content).strip(), f"a final answer after the tool results: {messages[-1]}")
print(json.dumps({"checks": client_checks.count, "calls": used, "answer": answer.content}))
