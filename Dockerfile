# syntax=docker/dockerfile:1
# Passport: passport-idp (the server) and passport-device (the reference device client) in one small image.
#   docker build -t passport .
#   docker run --rm -p 8080:8080 -e PASSPORT_ADMIN_TOKEN=change-me passport
# See docker-compose.yml for a deployment with Redis.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags="-s -w" -o /out/passport-idp ./cmd/passport-idp && \
    go build -trimpath -ldflags="-s -w" -o /out/passport-device ./cmd/passport-device

# distroless/static: CA certificates (for FCM and rediss://) and tzdata, no shell, runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/passport-idp /out/passport-device /usr/local/bin/
USER nonroot:nonroot
ENV PASSPORT_LISTEN=:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/passport-idp"]
