"""One validated Settings object from the environment, `.env` and `llmrelay.yaml`.

Precedence, highest first: environment variables, the `.env` file in the working directory, the YAML
config file (`--config` / `LLMRELAY_CONFIG`, else `./llmrelay.yaml` when present).
"""

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = "llmrelay.yaml"


def _env(*names: str) -> AliasChoices:
    """A field read from variables other than LLMRELAY_<NAME> (the Masa node's, the providers' own): these
    names, and in YAML the field name itself."""
    return AliasChoices(*names)


PROVIDERS = ("ollama", "openai", "anthropic", "cloudflare")


class DeploymentConfig(BaseModel):
    """One place a model is served, in `llmrelay.yaml`."""
    model_config = ConfigDict(extra="forbid")

    provider: Literal["ollama", "openai", "anthropic", "cloudflare", "local"]
    base_url: str | None = None  # default: the provider's URL from the environment, else its public API
    model: str | None = None  # the upstream's name for it; default: the public name
    api_key_env: str | None = None  # the environment variable holding the key (keys never live in the file)
    headers: dict[str, str] = {}
    connect_timeout: float | None = Field(None, gt=0)
    first_byte_timeout: float | None = Field(None, gt=0)
    options: dict[str, Any] = {}  # provider options, e.g. Ollama's {"num_ctx": 8192}
    weight: float = Field(1.0, gt=0)  # share of requests under the "weighted" strategy
    max_in_flight: int | None = Field(None, gt=0)  # requests at once; more wait in the node's queue
    idle_timeout: float | None = Field(None, gt=0)  # longest gap between two chunks of an answer
    total_timeout: float | None = Field(None, gt=0)  # longest whole answer
    max_connections: int | None = Field(None, gt=0)  # to its host at once (the smallest of a host's applies)
    # provider "local": a GGUF file run in the node (default: the embedded SmolLM2 model)
    model_path: str | None = None
    context_size: int | None = Field(None, gt=0)
    threads: int | None = Field(None, gt=0)

    @field_validator("base_url", mode="before")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(str(value)).rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _key_is_set(cls, name: str | None) -> str | None:
        if name is not None and not os.environ.get(name):
            raise ValueError(f"the environment variable {name} named by api_key_env is not set")
        return name


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    deployments: list[DeploymentConfig] = Field(min_length=1)
    strategy: Literal["least-busy", "weighted", "latency"] = "least-busy"
    fallbacks: list[str] = []  # models tried in order when every deployment failed
    context_window_fallbacks: list[str] = []  # models tried when the prompt is too long for this one
    rpm: int | None = Field(None, gt=0)  # requests per minute to this model, across all keys
    tpm: int | None = Field(None, gt=0)  # tokens per minute to this model, across all keys


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",  # a shared .env (the Masa node's) holds many unrelated variables
        env_prefix="LLMRELAY_",  # a field is LLMRELAY_<NAME> unless it names its variables (the Masa node's)
        populate_by_name=True,
        case_sensitive=False,
    )

    llm_chat_url: str | None = Field(None, validation_alias=_env("LLM_CHAT_URL", "llm_chat_url"))
    openai_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_API_KEY", "openai_api_key"))
    openai_base_url: str = Field(
        "https://api.openai.com/v1", validation_alias=_env("OPENAI_BASE_URL", "openai_base_url")
    )
    anthropic_api_key: SecretStr | None = Field(
        None, validation_alias=_env("ANTHROPIC_API_KEY", "CLAUDE_API_KEY", "anthropic_api_key")
    )
    anthropic_base_url: str = Field(
        "https://api.anthropic.com", validation_alias=_env("ANTHROPIC_BASE_URL", "anthropic_base_url")
    )
    anthropic_version: str = "2023-06-01"

    llm_cf_url: str | None = Field(None, validation_alias=_env("LLM_CF_URL", "llm_cf_url"))
    llm_cf_token: SecretStr | None = Field(None, validation_alias=_env("LLM_CF_TOKEN", "llm_cf_token"))
    # The Masa node's PROMPT: a system message for translated requests that bring none.
    prompt: str | None = Field(None, validation_alias=_env("PROMPT", "prompt"))
    models: list[ModelConfig] = []

    embedded_model: str | None = None
    embedded: bool = True
    local_context_size: int = Field(2048, gt=0, validation_alias=_env("LLMRELAY_LOCAL_CONTEXT", "local_context_size"))
    local_threads: int = Field(min(4, os.cpu_count() or 1), gt=0)
    local_queue: int = Field(8, ge=0)

    # Reliability: retries, cooldowns, timeouts, backpressure, shutdown.
    retries: int = Field(2, ge=0, le=10)
    retry_backoff: float = Field(0.1, ge=0)
    cooldown_failures: int = Field(3, gt=0)
    cooldown_window: float = Field(60.0, gt=0)
    cooldown_seconds: float = Field(30.0, gt=0)
    # The longest an upstream's Retry-After may keep a deployment out of rotation (one answer must not
    # refuse a model for an hour).
    cooldown_max: float = Field(60.0, gt=0)
    probe_interval: float = Field(0.0, ge=0)
    idle_timeout: float = Field(120.0, gt=0)
    total_timeout: float = Field(1800.0, gt=0)
    max_in_flight: int = Field(1024, gt=0)
    queue_size: int = Field(1024, ge=0)
    queue_timeout: float = Field(10.0, gt=0)
    drain_seconds: float = Field(30.0, ge=0)
    header_timeout: float = Field(10.0, gt=0)
    body_timeout: float = Field(30.0, gt=0)
    # A client that reads nothing of its answer for this long is cut off, and its request cancelled.
    write_timeout: float = Field(60.0, gt=0)
    max_header_bytes: int = Field(64 * 1024, gt=0)
    # Request bodies all of a worker's connections may hold before their requests reach the app (and its key
    # checks and capacity); past it a request goes to the app as it arrives, which reads its body itself.
    max_buffered_bytes: int = Field(64 * 1024 * 1024, gt=0)
    # Connections open to one upstream host at once; requests beyond wait in line (until the first-byte timeout).
    max_connections_per_host: int = Field(1024, gt=0)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=256)
    log_format: Literal["text", "json"] = "text"

    # Running the node for a team: keys, limits, usage records, metrics.
    master_key: SecretStr | None = None
    allow_open: bool = False
    data_dir: Path = Field(Path.home() / ".llmrelay")
    database_url: SecretStr | None = None
    redis_url: SecretStr | None = None
    # A network of nodes sharing one Redis: the registry, forwarding, shared keys and cooldowns.
    cluster_secret: SecretStr | None = None
    cluster_name: str = Field("llmrelay", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    node_url: str | None = None
    usage_records: bool = True
    public_metrics: bool = False
    # Browsers: host names a keyless node answers to besides IP addresses and localhost, and web origins
    # whose pages may call the node (comma-separated; "*" for any).
    allowed_hosts: str | None = None
    allowed_origins: str | None = None

    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0)
    connect_timeout: float = Field(5.0, gt=0)
    first_byte_timeout: float = Field(300.0, gt=0)
    ready_timeout: float = Field(2.0, gt=0)

    @field_validator("llm_chat_url", mode="before")
    @classmethod
    def _ollama_chat_endpoint(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        url = _http_url(str(value))
        # A bare base URL means Ollama's chat endpoint on it.
        if urlsplit(url).path in ("", "/"):
            url = url.rstrip("/") + "/api/chat"
        return url

    @field_validator("master_key")
    @classmethod
    def _long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters; `python3 -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))'` makes a good one")
        return key

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None and urlsplit(url.get_secret_value()).scheme not in ("postgresql", "postgres", "sqlite"):
            raise ValueError("must be a postgresql://user@host/db URL or sqlite:///path/to/file.db")
        return url

    @field_validator("node_url", mode="before")
    @classmethod
    def _node_url(cls, value: str | None) -> str | None:
        return _http_url(str(value)).rstrip("/") if value else None

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None and urlsplit(url.get_secret_value()).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://host:port/db URL")
        return url

    @field_validator("llm_cf_url", mode="before")
    @classmethod
    def _optional_url(cls, value: str | None) -> str | None:
        return _http_url(str(value)).rstrip("/") if value else None

    @field_validator("openai_base_url", "anthropic_base_url", mode="before")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return _http_url(str(value)).rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings, dotenv_settings]
        config_file = config_path()
        if config_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


def _http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL, for example http://localhost:11434/api/chat")
    return value.strip()


class SettingsError(Exception):
    """Raised with a message that names the variable to fix."""


# Field name -> the variable a user sets, for error messages.
_VARIABLE_NAMES = {
    name: field.validation_alias.choices[0] if isinstance(field.validation_alias, AliasChoices)
    else "LLMRELAY_" + name.upper()
    for name, field in Settings.model_fields.items()
}


def config_path() -> Path | None:
    explicit = os.environ.get("LLMRELAY_CONFIG")
    if explicit:
        return Path(explicit)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def load_settings(**overrides) -> Settings:
    """Build the settings or raise SettingsError naming each invalid variable (never its secret value)."""
    path = config_path()
    if path is not None and not path.is_file():
        raise SettingsError(f"LLMRELAY_CONFIG: the config file {path} does not exist")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            variable = _VARIABLE_NAMES.get(field, field.upper())
            if field == "models":  # in the config file: say where, e.g. models.0.deployments.1.base_url
                variable = "llmrelay.yaml " + ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{variable}: {message}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from None
    except (OSError, ValueError) as exc:  # unreadable or malformed YAML
        raise SettingsError(f"LLMRELAY_CONFIG: cannot read {path}: {exc}") from None
