"""LangChain integration for BitNet b1.58 models running on the CPU through bitnet-backend."""

from langchain_bitnet._version import __version__
from langchain_bitnet.chat_models import ChatBitnet
from langchain_bitnet.embeddings import BitnetEmbeddings
from langchain_bitnet.llms import BitnetLLM

__all__ = ["BitnetEmbeddings", "BitnetLLM", "ChatBitnet", "__version__"]
