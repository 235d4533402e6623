"""The topology language: topology files parsed, validated and compiled into operators."""
