"""Neutral chats the providers' request-encoding tests share, so that their recorded requests can be read
side by side: the same conversation as each upstream API spells it."""

from llmrelay.core.chat import Chat, ImagePart, Message, TextPart, Tool, ToolCall

# A 1x1 PNG, base64: small enough to keep in a fixture.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

WEATHER = Tool(
    name="get_current_weather",
    description="Get the current weather for a location",
    parameters={"type": "object",
                "properties": {"location": {"type": "string", "description": "The city, e.g. Paris, FR"},
                               "format": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                "required": ["location", "format"]})


def weather_conversation(*, stream: bool = True, image: bool = True) -> Chat:
    """System prompt, a user turn with a picture, a tool call, its result, and the user's next turn."""
    user = [TextPart("What is the weather today in Paris?")]
    if image:
        user.append(ImagePart(media_type="image/png", data=PNG))
    return Chat(
        model="client-model-name",
        messages=[
            Message("system", [TextPart("You are a terse weather assistant.")]),
            Message("user", user),
            Message("assistant", [], tool_calls=[
                ToolCall("call_abc123", "get_current_weather", '{"location":"Paris, FR","format":"celsius"}')]),
            Message("tool", [TextPart('{"temperature":22,"sky":"clear"}')], tool_call_id="call_abc123",
                    tool_name="get_current_weather"),
            Message("user", [TextPart("And should I take an umbrella?")]),
        ],
        stream=stream,
        tools=[WEATHER],
        params={"temperature": 0.2, "top_p": 0.9, "max_tokens": 256, "stop": ["\n\n"]},
    )
