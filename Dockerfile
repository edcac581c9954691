# Image for the docker-compose deployment (not exercised by CI).
FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir '.[all]'
